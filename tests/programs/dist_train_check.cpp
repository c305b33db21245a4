// Data-parallel training check: rectified flow with an MLP on checkerboard batches, in one process or as
// one rank of a group (from the environment); prints the loss of every step and a checksum of the weights.
//   dist_train_check STEPS BATCH
#include <gm/data/toy2d.hpp>
#include <gm/dist/group.hpp>
#include <gm/trainer.hpp>

#include <cstdio>
#include <cstdlib>

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 20, batch = argc > 2 ? std::atoll(argv[2]) : 256;
  try {
    gm::dist::Group group(gm::dist::environment(), std::chrono::seconds(30));
    torch::manual_seed(group.rank() == 0 ? 0 : 1234);  // ranks start apart: the broadcast must align them
    Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(64).layers(3)),
                 gm::TrainOptions().batch_size(batch).lr(2e-3).clip_norm(1.0).seed(7).threads(1));
    trainer.set_data_parallel(gm::dist::data_parallel(group));
    for (int64_t s = 0; s < steps; ++s) {
      // The global batch of step s, the same on every rank (a data source of (seed, step) alone).
      auto x = gm::data::checkerboard(batch, gm::make_generator(1000 + static_cast<uint64_t>(s)));
      const auto st = trainer.train_step(x);
      std::printf("rank %lld step %lld loss %.9g\n", (long long)group.rank(), (long long)st.step, st.loss);
    }
    double sum = 0, abs = 0;
    for (const auto& p : trainer.net()->parameters()) {
      sum += p.sum().item<double>();
      abs += p.abs().sum().item<double>();
    }
    std::printf("rank %lld weights %.12g %.12g\n", (long long)group.rank(), sum, abs);
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
