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

namespace {

// (H, W, C) uint8 → (C, H, W) float in [-1, 1], optionally mirrored; one pass, vectorisable.
void to_float_chw(const uint8_t* src, float* dst, int64_t h, int64_t w, int64_t c, bool flip) {
  constexpr float kScale = kPixelScale;  // uint8_to_float (batch_source.h) gives the same floats on the GPU
  const int64_t plane = h * w;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* row = src + y * w * c;
    float* out = dst + y * w;
    if (c == 1) {
      if (!flip)
        for (int64_t x = 0; x < w; ++x) out[x] = static_cast<float>(row[x]) * kScale - 1.0f;
      else
        for (int64_t x = 0; x < w; ++x) out[x] = static_cast<float>(row[w - 1 - x]) * kScale - 1.0f;
    } else if (c == 3) {
      float *r = out, *g = out + plane, *b = out + 2 * plane;
      if (!flip) {
        for (int64_t x = 0; x < w; ++x) {
          r[x] = static_cast<float>(row[3 * x]) * kScale - 1.0f;
          g[x] = static_cast<float>(row[3 * x + 1]) * kScale - 1.0f;
          b[x] = static_cast<float>(row[3 * x + 2]) * kScale - 1.0f;
        }
      } else {
        for (int64_t x = 0; x < w; ++x) {
          const uint8_t* px = row + 3 * (w - 1 - x);
          r[x] = static_cast<float>(px[0]) * kScale - 1.0f;
          g[x] = static_cast<float>(px[1]) * kScale - 1.0f;
          b[x] = static_cast<float>(px[2]) * kScale - 1.0f;
        }
      }
    } else {
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t x = 0; x < w; ++x)
          out[ch * plane + x] = static_cast<float>(row[(flip ? w - 1 - x : x) * c + ch]) * kScale - 1.0f;
    }
  }
}

// Mirrors one (H, W, C) uint8 image in place.
void flip_hwc(uint8_t* img, int64_t h, int64_t w, int64_t c) {
  for (int64_t y = 0; y < h; ++y) {
    uint8_t* row = img + y * w * c;
    for (int64_t x = 0; x < w / 2; ++x)
      for (int64_t ch = 0; ch < c; ++ch) std::swap(row[x * c + ch], row[(w - 1 - x) * c + ch]);
  }
}

}  // namespace

torch::Tensor Loader::pooled(torch::IntArrayRef shape, torch::ScalarType type) const {
  if (options_.pin_memory) return torch::empty(shape, torch::TensorOptions(type).pinned_memory(true));
  std::lock_guard<std::mutex> lock(pool_mutex_);
  // Free only when nothing outside the pool holds it: neither a handle to this tensor (handed-out
  // copies share its TensorImpl, so they show in t.use_count(), not in the storage's count) nor a
  // view of it (views share the storage).
  for (auto& t : pool_)
    if (t.use_count() == 1 && t.storage().use_count() == 1 && t.sizes() == shape && t.scalar_type() == type) {
      torch::Tensor out = t;  // the pool keeps its reference: the slot is busy until `out` is dropped
      return out;
    }
  torch::Tensor t = torch::empty(shape, type);
  if (pool_.size() < 2 * (static_cast<size_t>(options_.prefetch) + options_.workers) + 2) pool_.push_back(t);
  return t;
}

void Loader::assemble(const std::vector<int64_t>& indices, const std::vector<uint64_t>& flip_keys, Batch& out) const {
  const Manifest& m = dataset_->manifest();
  const int64_t b = static_cast<int64_t>(indices.size()), h = m.height, w = m.width, c = m.channels;
  const int64_t bytes = h * w * c;
  const bool as_uint8 = options_.output == LoaderOutput::kUint8;
  out.images = as_uint8 ? pooled({b, h, w, c}, torch::kUInt8) : pooled({b, c, h, w}, torch::kFloat32);
  if (m.has_labels)
    out.labels = torch::empty({b}, torch::TensorOptions(torch::kInt64).pinned_memory(options_.pin_memory));
  std::vector<uint8_t> pixels(as_uint8 ? 0 : static_cast<size_t>(bytes));
  for (int64_t k = 0; k < b; ++k) {
    const int64_t idx = indices[static_cast<size_t>(k)];
    const bool flip = !flip_keys.empty() && (mix64(flip_keys[static_cast<size_t>(k)]) & 1);
    if (m.has_labels) out.labels.data_ptr<int64_t>()[k] = dataset_->label(idx);
    if (as_uint8) {
      uint8_t* dst = out.images.data_ptr<uint8_t>() + k * bytes;
      dataset_->read_image(idx, dst);
      if (flip) flip_hwc(dst, h, w, c);
    } else {
      dataset_->read_image(idx, pixels.data());
      to_float_chw(pixels.data(), out.images.data_ptr<float>() + k * bytes, h, w, c, flip);
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
