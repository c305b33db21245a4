#pragma once
/// @file
/// Testing `gm::ImageClassifier` on an image data set (examples/classifier.cpp); gm/train/classifier.hpp trains it.

#include <gm/detail/compiled.hpp>
#include <gm/nn/classifier.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cstdint>

namespace gm {

/// Test accuracy of `net` on uint8 images [N, C, H, W] with labels [N].
double classifier_accuracy(ImageClassifier& net, const torch::Tensor& images, const torch::Tensor& labels,
                           torch::Device device = torch::kCPU, int64_t batch = 1000);
#if GM_HEADER_DEFINITIONS
GM_INLINE double classifier_accuracy(ImageClassifier& net, const torch::Tensor& images, const torch::Tensor& labels,
                                     torch::Device device, int64_t batch) {
  torch::NoGradGuard ng;
  net->eval();
  int64_t right = 0;
  for (int64_t i = 0; i < images.size(0); i += batch) {
    const int64_t j = std::min(i + batch, images.size(0));
    auto pred = net->forward(ImageClassifierImpl::input(images.slice(0, i, j).to(device))).argmax(1).to(torch::kCPU);
    right += (pred == labels.slice(0, i, j).to(torch::kInt64)).sum().item<int64_t>();
  }
  return static_cast<double>(right) / static_cast<double>(images.size(0));
}
#endif

}  // namespace gm
