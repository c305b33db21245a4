// A process of a data-parallel group, for the program tests: it joins the group from its environment
// (torchrun's or Slurm's variables, or none), then checks the collectives and prints one line per check.
//   dist_check [--die-at-step K | --hang-at-step K] [--timeout-ms MS]
// With --die-at-step, rank 1 exits before the K-th all-reduce; with --hang-at-step it stops answering
// there (sleeps); either way the others must fail with a clear one-line error within the timeout.
#include <gm/dist/group.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  int64_t die_at = -1, hang_at = -1, timeout_ms = 20000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--die-at-step")) die_at = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--hang-at-step")) hang_at = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--timeout-ms")) timeout_ms = std::atoll(argv[i + 1]);
  }
  try {
    const auto env = gm::dist::environment();
    gm::dist::Group g(env, std::chrono::milliseconds(timeout_ms));
    std::printf("rank %lld of %lld (%s, local %lld)\n", (long long)g.rank(), (long long)g.world(), env.launcher.c_str(),
                (long long)env.local_rank);
    auto t = torch::full({3}, static_cast<double>(g.rank() + 1));
    g.all_reduce_sum(t);
    const double expect = static_cast<double>(g.world() * (g.world() + 1) / 2);
    std::printf("rank %lld: all-reduce %s (%g)\n", (long long)g.rank(), t[0].item<double>() == expect ? "ok" : "WRONG",
                t[0].item<double>());
    auto b = torch::full({2}, static_cast<double>(100 + g.rank()));
    g.broadcast(b);
    std::printf("rank %lld: broadcast %s\n", (long long)g.rank(), b[1].item<double>() == 100 ? "ok" : "WRONG");
    const bool any = g.any(g.rank() == g.world() - 1), none = g.any(false);
    std::printf("rank %lld: any %s\n", (long long)g.rank(), any && !none ? "ok" : "WRONG");
    for (int64_t step = 0; (die_at >= 0 || hang_at >= 0) && step < 1000; ++step) {
      if (step == hang_at && g.rank() == 1) {
        std::printf("rank 1: hanging at step %lld\n", (long long)step);
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::seconds(120));
      }
      if (step == die_at && g.rank() == 1) {
        std::printf("rank 1: dying at step %lld\n", (long long)step);
        std::fflush(stdout);
        std::_Exit(9);
      }
      auto x = torch::ones({1});
      g.all_reduce_sum(x);
    }
    g.barrier();
    std::printf("rank %lld: done\n", (long long)g.rank());
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const gm::dist::PeerError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
