#pragma once
/// @file
/// `gm::ImageClassifier`: a small convolutional classifier whose penultimate features score generated
/// images (an offline Fréchet distance, and the class agreement of conditional samples).

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace gm {

/// Options of `gm::ImageClassifier`.
struct ImageClassifierOptions {
  TORCH_ARG(int64_t, channels) = 1;      ///< image channels
  TORCH_ARG(int64_t, image_size) = 28;   ///< height = width
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, width) = 32;        ///< channels of the first convolution (then 2x, 4x)
  TORCH_ARG(int64_t, features) = 128;    ///< size of the penultimate feature vector
  TORCH_ARG(double, dropout) = 0.25;     ///< dropout before the last layer, in training
};

/// A three-stage CNN: [3x3 conv, GroupNorm, ReLU, 2x2 max-pool] with width, 2 width and 4 width channels,
/// a linear layer to `features` units with ReLU (the penultimate features, in the role Inception's pool3
/// plays in FID), dropout and a linear layer to the class logits.  It takes images in [-1, 1]; `features`
/// and `logits` take uint8 images.  examples/classifier.cpp trains it on Fashion-MNIST in a few minutes.
class ImageClassifierImpl : public torch::nn::Module {
 public:
  explicit ImageClassifierImpl(ImageClassifierOptions o = {});

  /// Class logits [B, K] of images x in [-1, 1], [B, C, H, W].
  torch::Tensor forward(const torch::Tensor& x) { return head_(drop_(penultimate(x))); }
  /// The penultimate features [B, F] of images in [-1, 1].
  torch::Tensor penultimate(const torch::Tensor& x) { return torch::relu(feat_(body_->forward(x).flatten(1))); }
  /// uint8 images [B, C, H, W] to the classifier's input range [-1, 1].
  static torch::Tensor input(const torch::Tensor& u8) { return u8.to(torch::kFloat32) * (2.0 / 255.0) - 1.0; }

  const ImageClassifierOptions& options() const { return o_; }

 private:
  ImageClassifierOptions o_;
  torch::nn::Sequential body_;
  torch::nn::Linear feat_{nullptr}, head_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};

#if GM_HEADER_DEFINITIONS
GM_INLINE ImageClassifierImpl::ImageClassifierImpl(ImageClassifierOptions o) : o_(o) {
  if (o_.channels() < 1 || o_.image_size() < 8 || o_.num_classes() < 2 || o_.width() < 8 || o_.width() % 8 != 0 ||
      o_.features() < 2) {
    throw Error("gm: ImageClassifier needs channels >= 1, image_size >= 8, num_classes >= 2, width a multiple of 8, "
                "features >= 2");
  }
  int64_t in = o_.channels(), size = o_.image_size();
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t out = o_.width() << k;
    body_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
    body_->push_back(torch::nn::GroupNorm(8, out));
    body_->push_back(torch::nn::Functional(torch::relu));
    body_->push_back(torch::nn::Functional([](const torch::Tensor& x) { return torch::max_pool2d(x, 2); }));
    in = out, size /= 2;
  }
  register_module("body", body_);
  feat_ = register_module("feat", torch::nn::Linear(in * size * size, o_.features()));
  drop_ = register_module("drop", torch::nn::Dropout(o_.dropout()));
  head_ = register_module("head", torch::nn::Linear(o_.features(), o_.num_classes()));
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(ImageClassifier);

}  // namespace gm
