#include "convert/pipeline.h"

#include <unistd.h>

#include <filesystem>
#include <optional>

#include "core/errors.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/parallel.h"
#include "report/progress.h"
#include "shards/shard_writer.h"

namespace gantry::data {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxBadReports = 20;  // bad records named one by one; the rest are only counted

// Decodes and resizes one record; returns the reason on failure.
std::optional<Image> prepare(const RecordSource& source, const Record& r, const ConvertOptions& o, std::string* why) {
  try {
    Image img = square_resize(source.decode(r, o.channels), o.resolution);
    return img;
  } catch (const std::exception& e) {
    *why = e.what();
    return std::nullopt;
  }
}

void replace_dir(const std::string& tmp, const std::string& out) {
  if (fs::exists(out)) {
    std::string old = out + ".old-" + std::to_string(::getpid());
    fs::rename(out, old);
    fs::rename(tmp, out);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, out);
  }
  fs::path parent = fs::absolute(out).parent_path();
  fsync_path(parent.string());
}

}  // namespace

ConvertResult run_conversion(RecordSource& source, const ConvertOptions& o) {
  if (o.out.empty()) throw UsageError("--out: required");
  if (o.shard_size <= 0) throw UsageError("--shard-size: must be positive");
  if (o.resolution < 0) throw UsageError("--resolution: must be positive");
  if (o.channels != 1 && o.channels != 3) throw UsageError("--channels: must be 1 or 3");
  if (o.max_bad < 0 || o.max_bad > 1) throw UsageError("--max-bad: must be a fraction in [0, 1]");
  std::string out = o.out;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (fs::exists(out) && !o.force) throw UsageError(at(out, "already exists (add --force to replace it)"));
  std::string tmp = temp_sibling(out);
  fs::remove_all(tmp);
  if (!fs::absolute(out).parent_path().empty()) fs::create_directories(fs::absolute(out).parent_path());

  const unsigned workers = o.workers ? o.workers : hardware_threads();
  const size_t batch = 32 * static_cast<size_t>(workers);  // memory: one batch of records and images
  const int64_t total = source.total();
  ConvertResult result;
  std::unique_ptr<ShardWriter> writer;
  int first_h = 0, first_w = 0, first_c = 0;
  int64_t seen = 0;
  Progress bar("convert", static_cast<uint64_t>(total), "images", stderr, o.progress);
  try {
    std::vector<Record> records(batch);
    std::vector<std::optional<Image>> images(batch);
    std::vector<std::string> why(batch);
    for (;;) {
      size_t n = 0;
      while (n < batch && source.next(records[n])) ++n;
      if (n == 0) break;
      parallel_for(n, workers, [&](size_t i) { images[i] = prepare(source, records[i], o, &why[i]); });
      for (size_t i = 0; i < n; ++i) {
        std::optional<Image>& img = images[i];
        if (img && writer && (img->height != first_h || img->width != first_w || img->channels != first_c)) {
          why[i] = "size " + std::to_string(img->height) + "x" + std::to_string(img->width) + " differs from the first image's " +
                   std::to_string(first_h) + "x" + std::to_string(first_w) + " (pass --resolution)";
          img.reset();
        }
        if (!img) {
          if (result.bad < kMaxBadReports) log_warn(at(records[i].key, "skipped: " + why[i]));
          if (result.bad == kMaxBadReports) log_warn("further undecodable records are counted, not listed");
          ++result.bad;
          continue;
        }
        if (!writer) {
          first_h = img->height;
          first_w = img->width;
          first_c = img->channels;
          writer = std::make_unique<ShardWriter>(tmp, first_h, first_w, first_c, source.has_labels(), o.shard_size,
                                                 total - seen, source.describe());
        }
        writer->add(img->pixels.data(), records[i].label);
        img.reset();
      }
      seen += static_cast<int64_t>(n);
      bar.set(static_cast<uint64_t>(seen), result.bad ? std::to_string(result.bad) + " bad" : "");
    }
    bar.finish(result.bad ? std::to_string(result.bad) + " bad" : "");
    double frac = seen ? static_cast<double>(result.bad) / static_cast<double>(seen) : 0.0;
    if (!writer) throw DataError(at(source.describe(), seen ? "no record could be decoded" : "no records"));
    if (frac > o.max_bad)
      throw DataError(at(source.describe(), std::to_string(result.bad) + " of " + std::to_string(seen) +
                                                " records undecodable (" + std::to_string(100.0 * frac) +
                                                "%), more than --max-bad " + std::to_string(o.max_bad)));
    result.manifest = writer->finish();
    writer.reset();
    replace_dir(tmp, out);
  } catch (...) {
    writer.reset();
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return result;
}

}  // namespace gantry::data
