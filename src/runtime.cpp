// libgm_runtime: gm's non-template functions compiled once (include/gm/detail/compiled.hpp).  Every header's
// `#if GM_HEADER_DEFINITIONS` block is defined here, not inline; a program linking gm::runtime sees only
// their declarations.
#define GM_RUNTIME_SOURCE
#ifndef GM_COMPILED
#error "libgm_runtime is compiled with GM_COMPILED (CMake's gm_runtime target sets it)"
#endif

#include <gm/data/augment.hpp>
#include <gm/data/coarse.hpp>
#include <gm/data/encoders.hpp>
#include <gm/data/features.hpp>
#include <gm/data/gaussian_mixture.hpp>
#include <gm/data/image_files.hpp>
#include <gm/data/images.hpp>
#include <gm/data/toy2d.hpp>
#include <gm/data/vectors.hpp>
#include <gm/dist/group.hpp>
#include <gm/eval/classifier.hpp>
#include <gm/eval/feature_net.hpp>
#include <gm/eval/frechet.hpp>
#include <gm/eval/kid.hpp>
#include <gm/eval/likelihood.hpp>
#include <gm/experiment/check.hpp>
#include <gm/experiment/dist.hpp>
#include <gm/experiment/edm.hpp>
#include <gm/experiment/eval.hpp>
#include <gm/experiment/experiment.hpp>
#include <gm/experiment/few_step.hpp>
#include <gm/experiment/outputs.hpp>
#include <gm/experiment/sample.hpp>
#include <gm/experiment/train.hpp>
#include <gm/io/cli.hpp>
#include <gm/io/config.hpp>
#include <gm/io/export.hpp>
#include <gm/io/file.hpp>
#include <gm/io/grid.hpp>
#include <gm/io/npy.hpp>
#include <gm/io/plot.hpp>
#include <gm/io/png.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/io/toml.hpp>
#include <gm/nn/classifier.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/edm2_unet.hpp>
#include <gm/nn/embedding.hpp>
#include <gm/nn/jvp.hpp>
#include <gm/nn/keys.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/nn/unet.hpp>
#include <gm/random.hpp>
#include <gm/sampler/grid_search.hpp>
#include <gm/sampler/grids.hpp>
#include <gm/sampler/kdiffusion.hpp>
#include <gm/sampler/multistep.hpp>
#include <gm/sampler/unipc.hpp>
#include <gm/time/samplers.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/classifier.hpp>
#include <gm/train/coupling.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/flat_adam.hpp>
#include <gm/train/lr_schedule.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/precision.hpp>
#include <gm/train/profiler.hpp>
#include <gm/train/run_dir.hpp>

namespace gm {
template struct UniPC<2>;
template struct UniPC<3>;
}  // namespace gm
