// Helpers for the dataset-layer tests: idx files, LMDB databases, tampering with shards, and
// running the CLI with stdout and stderr kept apart.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "convert/image.h"
#include "support/testing.h"

namespace gantry::testing {

// ---- idx ----------------------------------------------------------------------------------------
// An idx3 image file (magic 0x00000803): n images of rows x cols, `pixels` n*rows*cols bytes.
std::string idx_images(int64_t n, int rows, int cols, const std::vector<uint8_t>& pixels);
// An idx1 label file (magic 0x00000801).
std::string idx_labels(const std::vector<uint8_t>& labels);
void write_gz(const std::string& path, const std::string& bytes);
// Whole decompressed contents of a .gz file (zlib, independent of gantry's reader).
std::string read_gz(const std::string& path);

// ---- LMDB ---------------------------------------------------------------------------------------
// Creates an LMDB environment directory `dir` with the given key/value records (any order).
void write_lmdb(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& records);
// A 40-hex-character key derived from i (like LSUN's SHA-1 ids).
std::string hex_key(uint64_t i);

// ---- images -------------------------------------------------------------------------------------
data::Image solid(int h, int w, uint8_t r, uint8_t g, uint8_t b);
// Mean of each channel.
std::vector<double> mean_color(const uint8_t* pixels, int64_t n_pixels, int channels);

// ---- shards -------------------------------------------------------------------------------------
enum class ImagesType { kUint8, kUint16, kFloat32 };
enum class Layout { kContiguous, kDeflate };  // deflate: chunked 2 images per chunk, gzip filter
// Rewrites a shard file with an "images" dataset of the given type and shape [n,h,w,c] (`images` in
// that type, or zeros when null) and int64 "labels" [n] (zeros when null), laid out as another
// tool (h5py) might write it.
void rewrite_shard(const std::string& path, ImagesType type, int64_t n, int64_t h, int64_t w, int64_t c,
                   const void* images = nullptr, const int64_t* labels = nullptr, Layout layout = Layout::kContiguous);
// Updates every shard's bytes and checksum in DIR/manifest.json to match the files on disk (so only
// the structure, not the checksum, is wrong).
void refresh_manifest(const std::string& dir);
// File offset of image `i`'s chunk in a shard, read with the HDF5 C API.
uint64_t chunk_offset(const std::string& shard_path, int64_t i);

// ---- CLI ----------------------------------------------------------------------------------------
struct SplitResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs `gantry <args>` with stdout and stderr captured separately.
SplitResult run_gantry_split(const std::string& args);

// Names in `dir` that start with `prefix`.
std::vector<std::string> entries_starting_with(const std::string& dir, const std::string& prefix);

}  // namespace gantry::testing
