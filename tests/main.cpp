// The one doctest main shared by every test file.  doctest.h is already in the precompiled header;
// including it again with DOCTEST_CONFIG_IMPLEMENT adds the implementation.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <torch/types.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
// Every test case starts from the same torch seed, so a test's random inputs do not depend on which
// other tests ran before it in the same process (ctest runs each case alone; a plain run runs them all).
struct SeedEachTest : doctest::IReporter {
  explicit SeedEachTest(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {
    ++started;
    torch::manual_seed(0);
  }
  static inline long started = 0;  // test cases run
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
}  // namespace
DOCTEST_REGISTER_LISTENER("seed_each_test", 1, SeedEachTest);

// `--gm-cases=N` (cmake/gm_test_groups.py gives each ctest test its count): the run fails unless exactly N
// test cases ran, so a filter that matches fewer than it names fails instead of passing with fewer.  The
// exit code stays the verdict, so a crash or a sanitizer's report after the last case fails too.
int main(int argc, char** argv) {
  long expect = -1;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--gm-cases=", 11) == 0) expect = std::strtol(argv[i] + 11, nullptr, 10);
    else args.push_back(argv[i]);
  }
  doctest::Context context(static_cast<int>(args.size()), args.data());
  const int rc = context.run();
  if (context.shouldExit() || rc != 0) return rc;
  if (expect >= 0 && SeedEachTest::started != expect) {
    std::fprintf(stderr, "gm_tests: %ld test case(s) ran where --gm-cases=%ld were named\n", SeedEachTest::started, expect);
    return 1;
  }
  return 0;
}
