// Random access to a dataset directory. open() reads only manifest.json (300 shards open in
// milliseconds); a shard's HDF5 file is opened on first use, its structure checked against the
// manifest, and then — for files laid out as ShardWriter writes them (unfiltered, one chunk per
// image, chunks in index order) — image i is read with one pread() at base + i*stride, without the
// HDF5 library or its global lock on the hot path. Other layouts (e.g. a file rewritten by h5py)
// fall back to hyperslab reads through HDF5. Memory per open shard is a file descriptor, a few
// integers and its labels (8 bytes per image, only for labelled datasets).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shards/manifest.h"

namespace gantry::data {

class ShardedDataset {
 public:
  static std::shared_ptr<ShardedDataset> open(const std::string& dir);
  ~ShardedDataset();

  const Manifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  int64_t size() const { return manifest_.count; }
  int64_t image_bytes() const { return manifest_.image_bytes(); }

  // Copies image `index` (H*W*C bytes, HWC) into dst. Thread-safe. DataError on a bad shard.
  void read_image(int64_t index, uint8_t* dst) const;
  // Label of image `index`; requires manifest().has_labels.
  int64_t label(int64_t index) const;
  // Opens shard `s` now (checks its structure); DataError naming the file if it is malformed.
  void check_shard(size_t s) const;
  // True when shard `s` is read with direct preads (opens it).
  bool fast_path(size_t s) const;

 private:
  struct Shard;
  explicit ShardedDataset(std::string dir, Manifest manifest);
  Shard& shard_for(int64_t index, int64_t* local) const;
  Shard& opened(size_t s) const;

  std::string dir_;
  Manifest manifest_;
  std::vector<int64_t> starts_;  // first global index of each shard
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Rechecks every shard's size, checksum and structure against the manifest. Throws DataError
// naming the first bad file; `progress` prints a bar. Returns the number of images checked.
int64_t verify_dataset(const std::string& dir, bool progress);

}  // namespace gantry::data
