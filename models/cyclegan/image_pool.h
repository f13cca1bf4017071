// ImagePool: the history of generated images a CycleGAN discriminator also learns from (Shrivastava et
// al. 2017; Zhu et al. 2017 section 4, "a buffer that stores the 50 previously created images"), with
// the reference's ImagePool.query semantics, image by image:
//   - while fewer than `capacity` images are stored, the image is stored and returned;
//   - then, with probability ½ a uniformly chosen stored image is returned and the new image takes its
//     slot; otherwise the new image is returned and the pool is unchanged.
// Random numbers come from the generator the caller passes (CycleGAN keys it by (seed, rank, data
// position)), so a resumed run makes the same choices. The stored images and their count are the
// checkpointed state (state() / restore()): fixed shapes, allocated up front, on the training device.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>

namespace gantry::cyclegan {

class ImagePool {
 public:
  // `image_shape` (C, H, W); capacity 0 turns the pool off (query returns its input).
  ImagePool(int64_t capacity, c10::IntArrayRef image_shape, const torch::Device& device);

  // images (N, C, H, W), detached → (N, C, H, W): each row the image itself or one from the history.
  torch::Tensor query(const torch::Tensor& images, at::Generator& gen);

  int64_t capacity() const { return capacity_; }
  int64_t size() const { return count_; }
  const torch::Tensor& stored() const { return stored_; }  // (capacity, C, H, W); rows [0, size) are live

  // Checkpointed state: the stored images and a one-element int64 count (CPU copies).
  torch::Tensor images_state() const { return stored_.cpu(); }
  torch::Tensor count_state() const;
  // Puts a checkpointed state back (shapes must match: std::invalid_argument otherwise).
  void restore(const torch::Tensor& images, const torch::Tensor& count);
  void clear() { count_ = 0; }

 private:
  int64_t capacity_ = 0, count_ = 0;
  torch::Tensor stored_;
};

}  // namespace gantry::cyclegan
