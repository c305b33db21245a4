// The one doctest main shared by every test file.  doctest.h is already in the precompiled header;
// including it again with DOCTEST_CONFIG_IMPLEMENT adds the implementation.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <torch/types.h>

namespace {
// Every test case starts from the same torch seed, so a test's random inputs do not depend on which
// other tests ran before it in the same process (ctest runs each case alone; a plain run runs them all).
struct SeedEachTest : doctest::IReporter {
  explicit SeedEachTest(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { torch::manual_seed(0); }
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
