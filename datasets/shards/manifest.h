// The dataset directory contract (ARCHITECTURE.md, "Dataset directory"): manifest.json describing
// shard-NNNNN.h5 files, each with "images" uint8 [N,H,W,C] (one chunk per image) and optional
// "labels" int64 [N]. This header holds the manifest; shard_writer.h / sharded_dataset.h the files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gantry::data {

inline constexpr int kFormatVersion = 1;

struct ShardInfo {
  std::string file;      // "shard-00000.h5", relative to the dataset directory
  int64_t count = 0;     // images in this shard
  uint64_t bytes = 0;    // file size
  std::string checksum;  // "crc32:xxxxxxxx" of the whole file
};

struct Manifest {
  int version = kFormatVersion;
  int64_t height = 0, width = 0, channels = 0;  // image shape [H, W, C]
  int64_t count = 0;                             // images in all shards
  bool has_labels = false;
  std::string source;  // what it was converted from, e.g. "idx:/usr/share/.../train-images-idx3-ubyte.gz"
  std::vector<ShardInfo> shards;

  int64_t image_bytes() const { return height * width * channels; }
};

std::string shard_file_name(size_t index);  // "shard-00042.h5"

// Reads and validates DIR/manifest.json; DataError naming the file and the problem otherwise.
Manifest read_manifest(const std::string& dir);
// Writes DIR/manifest.json atomically.
void write_manifest(const std::string& dir, const Manifest& manifest);

}  // namespace gantry::data
