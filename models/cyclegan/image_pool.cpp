#include "cyclegan/image_pool.h"

#include <torch/torch.h>

#include <stdexcept>
#include <vector>

namespace gantry::cyclegan {

ImagePool::ImagePool(int64_t capacity, c10::IntArrayRef image_shape, const torch::Device& device)
    : capacity_(capacity) {
  std::vector<int64_t> shape{capacity};
  shape.insert(shape.end(), image_shape.begin(), image_shape.end());
  stored_ = torch::zeros(shape, torch::TensorOptions(device).dtype(torch::kFloat32));
}

torch::Tensor ImagePool::query(const torch::Tensor& images, at::Generator& gen) {
  if (capacity_ == 0) return images;
  torch::NoGradGuard no_grad;
  const torch::Tensor fresh = images.detach().to(torch::kFloat32);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < fresh.size(0); ++i) {
    const torch::Tensor image = fresh[i];
    if (count_ < capacity_) {
      stored_[count_++].copy_(image);
      out.push_back(image);
    } else if (at::rand({1}, gen, torch::kFloat64).item<double>() > 0.5) {  // the reference's p > 0.5
      const int64_t slot = at::randint(capacity_, {1}, gen, torch::kInt64).item<int64_t>();
      out.push_back(stored_[slot].clone());
      stored_[slot].copy_(image);
    } else {
      out.push_back(image);
    }
  }
  return torch::stack(out);
}

torch::Tensor ImagePool::count_state() const {
  return torch::full({1}, count_, torch::kInt64);
}

void ImagePool::restore(const torch::Tensor& images, const torch::Tensor& count) {
  if (images.sizes() != stored_.sizes() || count.numel() != 1)
    throw std::invalid_argument("image pool state of shape " + c10::str(images.sizes()) + " for a pool of " +
                                c10::str(stored_.sizes()));
  const int64_t n = count.to(torch::kInt64).item<int64_t>();
  if (n < 0 || n > capacity_) throw std::invalid_argument("image pool count " + std::to_string(n) + " out of range");
  torch::NoGradGuard no_grad;
  stored_.copy_(images);
  count_ = n;
}

}  // namespace gantry::cyclegan
