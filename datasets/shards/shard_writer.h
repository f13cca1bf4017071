// Writes a dataset directory: images appended one at a time are cut into shards of `shard_size`,
// each an HDF5 file with "images" uint8 [n,H,W,C] chunked one image per chunk (allocated up front,
// unfiltered, so a reader can locate image i without walking an index) and "labels" int64 [n].
// finish() checksums every shard and writes manifest.json last. The caller writes into a temporary
// directory and renames it (see convert/pipeline.h): a directory with a manifest is complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shards/hdf5_util.h"
#include "shards/manifest.h"

namespace gantry::data {

class ShardWriter {
 public:
  // `expected_total` sizes the shards (0: unknown, every shard gets `shard_size` slots); a shard that
  // ends up with fewer images than slots is rewritten at its exact size when closed.
  ShardWriter(std::string dir, int64_t height, int64_t width, int64_t channels, bool has_labels,
              int64_t shard_size, int64_t expected_total, std::string source);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void add(const uint8_t* image, int64_t label = 0);  // image: H*W*C bytes, HWC
  Manifest finish();
  int64_t count() const { return manifest_.count + in_shard_; }

 private:
  void open_shard();
  void flush_buffer();
  void close_shard();

  std::string dir_;
  Manifest manifest_;
  int64_t shard_size_, expected_total_;
  int64_t capacity_ = 0, in_shard_ = 0, flushed_ = 0;  // slots, images added, images written to HDF5
  std::vector<uint8_t> buffer_;                          // images not yet written
  std::vector<int64_t> labels_;                          // labels of the current shard
  H5Handle file_, images_;
  bool finished_ = false;
};

// Creates one shard file with exact `count` slots; used by the writer and for rewriting.
H5Handle create_shard_file(const std::string& path, int64_t count, int64_t h, int64_t w, int64_t c, bool labels,
                           H5Handle* images_out);

}  // namespace gantry::data
