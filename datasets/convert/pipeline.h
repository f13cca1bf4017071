// `gantry data convert`: a RecordSource yields records in a fixed order (idx file order, LMDB key
// order, sorted paths); run_conversion decodes them on all cores in bounded batches, crops/resizes,
// and writes shards in source order into "<out>.tmp-<pid>", renamed to <out> only when complete.
// Undecodable records are reported by key, skipped and counted; more than `max_bad` of them fails
// the conversion (DataError, exit 3). Add a format: implement RecordSource, add it to make_source.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "convert/image.h"
#include "shards/manifest.h"

namespace gantry::data {

struct Record {
  std::string key;    // id shown in error messages: LMDB key, relative path, "image 17"
  std::string bytes;  // encoded image, or raw pixels for raw sources
  int64_t label = 0;
};

class RecordSource {
 public:
  virtual ~RecordSource() = default;
  virtual int64_t total() const = 0;          // records next() will yield (limit applied)
  virtual bool next(Record& record) = 0;      // false after the last record
  virtual Image decode(const Record& record, int channels) const = 0;  // throws on a bad record
  virtual bool has_labels() const { return false; }
  virtual std::string describe() const = 0;   // recorded as the manifest's "source"
};

struct ConvertOptions {
  std::string out;             // dataset directory to create
  int64_t shard_size = 10000;  // images per shard
  int resolution = 0;          // 0: native size (all images must share it)
  int channels = 3;            // 1 or 3 for encoded sources; raw sources keep their own
  int64_t limit = 0;           // 0: all records
  bool force = false;          // replace an existing output
  double max_bad = 0.001;      // fraction of undecodable records tolerated
  unsigned workers = 0;        // decoding threads, 0: all cores
  bool progress = true;
};

struct ConvertResult {
  Manifest manifest;
  int64_t bad = 0;
};

ConvertResult run_conversion(RecordSource& source, const ConvertOptions& options);

// Sources (convert/sources.cpp). Each throws DataError naming the input when it cannot be read.
// idx: `classes` (non-empty) keeps the images whose label is one of them (labels file required), and
// `limit` counts the images kept.
std::unique_ptr<RecordSource> make_idx_source(const std::string& images, const std::string& labels, int64_t limit,
                                              const std::vector<int64_t>& classes = {});
std::unique_ptr<RecordSource> make_lmdb_source(const std::string& dir, int64_t limit);
std::unique_ptr<RecordSource> make_folder_source(const std::string& root, int64_t limit);
// Deterministic pseudo-random images (for tests and benchmarks), labels = index % 10.
std::unique_ptr<RecordSource> make_synthetic_source(int64_t count, int resolution, int channels, uint64_t seed);

}  // namespace gantry::data
