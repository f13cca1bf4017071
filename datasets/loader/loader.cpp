#include "loader/loader.h"

#include <cstring>
#include <exception>

namespace gantry::data {

struct Loader::Slot {
  int64_t seq = -1;  // batch sequence number held, -1: empty
  bool ready = false;
  Batch batch;
  std::exception_ptr error;
};

Loader::Loader(std::shared_ptr<const ShardedDataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options),
      sampler_(dataset_->size(), options.global_batch, options.rank, options.world_size, options.seed, options.shuffle) {
  claim_position_ = next_position_ = sampler_.normalise(options_.start);
  if (options_.workers == 0) return;
  if (options_.prefetch == 0) options_.prefetch = 1;
  for (unsigned i = 0; i < options_.prefetch; ++i) slots_.push_back(std::make_unique<Slot>());
  for (unsigned i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

DataPosition Loader::position() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return next_position_;
}

void Loader::assemble(const std::vector<int64_t>& indices, const std::vector<uint64_t>& flip_keys, Batch& out) const {
  const Manifest& m = dataset_->manifest();
  const int64_t b = static_cast<int64_t>(indices.size()), h = m.height, w = m.width, c = m.channels;
  out.images = torch::empty({b, c, h, w}, torch::kFloat32);
  if (m.has_labels) out.labels = torch::empty({b}, torch::kInt64);
  std::vector<uint8_t> pixels(static_cast<size_t>(h * w * c));
  float* dst_all = out.images.data_ptr<float>();
  constexpr float kScale = 2.0f / 255.0f;
  for (int64_t k = 0; k < b; ++k) {
    const int64_t idx = indices[static_cast<size_t>(k)];
    dataset_->read_image(idx, pixels.data());
    if (m.has_labels) out.labels.data_ptr<int64_t>()[k] = dataset_->label(idx);
    const bool flip = !flip_keys.empty() && (mix64(flip_keys[static_cast<size_t>(k)]) & 1);
    float* dst = dst_all + k * c * h * w;
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* row = pixels.data() + y * w * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        float* drow = dst + (ch * h + y) * w;
        if (!flip) {
          for (int64_t x = 0; x < w; ++x) drow[x] = static_cast<float>(row[x * c + ch]) * kScale - 1.0f;
        } else {
          for (int64_t x = 0; x < w; ++x) drow[x] = static_cast<float>(row[(w - 1 - x) * c + ch]) * kScale - 1.0f;
        }
      }
    }
  }
}

Batch Loader::load(const DataPosition& p, DataPosition* next) const {
  Batch batch;
  batch.position = sampler_.normalise(p);
  auto indices = sampler_.indices(batch.position, next);
  std::vector<uint64_t> flip_keys;
  if (options_.flip) {
    // One key per sample from (seed, epoch, position in the epoch's global order).
    const int64_t first = batch.position.index + options_.rank * sampler_.local_batch();
    for (size_t k = 0; k < indices.size(); ++k)
      flip_keys.push_back(mix64(options_.seed ^ 0xF11Bull) ^ mix64(static_cast<uint64_t>(batch.position.epoch)) ^
                          static_cast<uint64_t>(first + static_cast<int64_t>(k)) * 0x9E3779B97F4A7C15ull);
  }
  assemble(indices, flip_keys, batch);
  return batch;
}

void Loader::worker_loop() {
  for (;;) {
    int64_t seq;
    DataPosition p;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || claimed_ < consumed_ + static_cast<int64_t>(slots_.size()); });
      if (stop_) return;
      seq = claimed_++;
      p = claim_position_;
      claim_position_ = sampler_.normalise({p.epoch, p.index + options_.global_batch});
      slots_[static_cast<size_t>(seq) % slots_.size()]->seq = seq;
    }
    Batch batch;
    std::exception_ptr error;
    try {
      batch = load(p, nullptr);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Slot& slot = *slots_[static_cast<size_t>(seq) % slots_.size()];
      slot.batch = std::move(batch);
      slot.error = error;
      slot.ready = true;
    }
    cv_.notify_all();
  }
}

Batch Loader::next() {
  if (options_.workers == 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    DataPosition after;
    Batch b = load(next_position_, &after);
    next_position_ = after;
    return b;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  Slot& slot = *slots_[static_cast<size_t>(consumed_) % slots_.size()];
  cv_.wait(lock, [&] { return slot.ready && slot.seq == consumed_; });
  Batch b = std::move(slot.batch);
  std::exception_ptr error = slot.error;
  slot.ready = false;
  slot.seq = -1;
  slot.error = nullptr;
  ++consumed_;
  if (!error) next_position_ = sampler_.normalise({b.position.epoch, b.position.index + options_.global_batch});
  lock.unlock();
  cv_.notify_all();
  if (error) std::rethrow_exception(error);
  return b;
}

}  // namespace gantry::data
