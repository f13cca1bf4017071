// gantry data convert | inspect | verify | bench
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "convert/pipeline.h"
#include "core/errors.h"
#include "loader/loader.h"
#include "shards/sharded_dataset.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace gantry::cli {

namespace {

// Parses args; on --help prints usage + options and returns false.
bool parse(const Args& args, const po::options_description& desc, const po::positional_options_description* pos,
           po::variables_map& vm, const char* usage) {
  po::command_line_parser parser(args);
  parser.options(desc);
  if (pos) parser.positional(*pos);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

// --classes 7 or 7,9: labels 0..255 (an idx label is one byte).
std::vector<int64_t> parse_classes(const std::string& text, const std::string& labels) {
  std::vector<int64_t> classes;
  if (text.empty()) return classes;
  if (labels.empty()) throw UsageError("--classes: needs --labels (the labels file the classes are read from)");
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 3 ||
        std::stoi(item) > 255)
      throw UsageError("--classes: expected labels 0-255 separated by commas (e.g. 7,9), got '" + text + "'");
    classes.push_back(std::stoi(item));
    start = comma + 1;
  }
  return classes;
}

int convert(const Args& args) {
  data::ConvertOptions o;
  std::string format, images, labels, lmdb, root, classes;
  int64_t count = 0;
  uint64_t seed = 0;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("format", po::value(&format)->required(),
                                                 "input format: idx | lsun | folder | synthetic")(
      "out", po::value(&o.out)->required(), "dataset directory to create")(
      "images", po::value(&images), "idx: images file (.gz or plain)")("labels", po::value(&labels),
                                                                       "idx: labels file (optional)")(
      "classes", po::value(&classes), "idx: keep only these labels, e.g. 7 or 7,9 (needs --labels)")(
      "lmdb", po::value(&lmdb), "lsun: LMDB database directory")("root", po::value(&root),
                                                                 "folder: root of a tree of PNG/JPEG/WebP files")(
      "count", po::value(&count), "synthetic: number of images")("seed", po::value(&seed)->default_value(0),
                                                                 "synthetic: seed")(
      "shard-size", po::value(&o.shard_size)->default_value(10000), "images per shard")(
      "resolution", po::value(&o.resolution),
      "center-crop to a square and area-resize to RxR (lsun default 64; others: native)")(
      "channels", po::value(&o.channels)->default_value(3), "lsun/folder/synthetic: 1 (gray) or 3 (RGB)")(
      "limit", po::value(&o.limit)->default_value(0), "convert at most N records (0: all)")(
      "max-bad", po::value(&o.max_bad)->default_value(0.001), "fraction of undecodable records tolerated")(
      "workers", po::value(&o.workers)->default_value(0), "decoding threads (0: all cores)")(
      "force", po::bool_switch(&o.force), "replace an existing output directory")("quiet", "no progress output");
  po::variables_map vm;
  if (!parse(args, desc, nullptr, vm,
             "usage: gantry data convert --format idx|lsun|folder|synthetic [format options] --out DIR [options]"))
    return 0;
  o.progress = !vm.count("quiet");
  auto need = [&](const std::string& key, const std::string& value) {
    if (value.empty()) throw UsageError("--" + key + ": required with --format " + format);
  };
  if (!classes.empty() && format != "idx") throw UsageError("--classes: only with --format idx");
  std::unique_ptr<data::RecordSource> source;
  if (format == "idx") {
    need("images", images);
    source = data::make_idx_source(images, labels, o.limit, parse_classes(classes, labels));
  } else if (format == "lsun") {
    need("lmdb", lmdb);
    if (!vm.count("resolution")) o.resolution = 64;
    source = data::make_lmdb_source(lmdb, o.limit);
  } else if (format == "folder") {
    need("root", root);
    source = data::make_folder_source(root, o.limit);
  } else if (format == "synthetic") {
    if (count <= 0) throw UsageError("--count: required (positive) with --format synthetic");
    if (!vm.count("resolution")) throw UsageError("--resolution: required with --format synthetic");
    source =
        data::make_synthetic_source(o.limit > 0 ? std::min(count, o.limit) : count, o.resolution, o.channels, seed);
  } else {
    throw UsageError("--format: expected idx, lsun, folder or synthetic, got '" + format + "'");
  }
  auto t0 = std::chrono::steady_clock::now();
  data::ConvertResult r = data::run_conversion(*source, o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %lld images [%lld,%lld,%lld] in %zu shards, %lld undecodable skipped, %.1f s\n", o.out.c_str(),
              static_cast<long long>(r.manifest.count), static_cast<long long>(r.manifest.height),
              static_cast<long long>(r.manifest.width), static_cast<long long>(r.manifest.channels),
              r.manifest.shards.size(), static_cast<long long>(r.bad), s);
  return 0;
}

int inspect(const Args& args) {
  std::string dir;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("dir", po::value(&dir)->required(), "dataset directory");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse(args, desc, &pos, vm, "usage: gantry data inspect DIR")) return 0;
  data::Manifest m = data::read_manifest(dir);
  uint64_t bytes = 0;
  for (const auto& s : m.shards) bytes += s.bytes;
  std::printf("dataset   %s\n", fs::absolute(dir).c_str());
  std::printf("count     %lld images\n", static_cast<long long>(m.count));
  std::printf("shape     [%lld, %lld, %lld] (H, W, C), uint8\n", static_cast<long long>(m.height),
              static_cast<long long>(m.width), static_cast<long long>(m.channels));
  std::printf("shards    %zu (%s ... %s), %.1f MiB\n", m.shards.size(),
              m.shards.empty() ? "-" : m.shards.front().file.c_str(),
              m.shards.empty() ? "-" : m.shards.back().file.c_str(), static_cast<double>(bytes) / (1 << 20));
  std::printf("labels    %s\n", m.has_labels ? "yes (int64)" : "no");
  std::printf("source    %s\n", m.source.c_str());
  std::printf("format    gantry-shards v%d\n", m.version);
  return 0;
}

int verify(const Args& args) {
  std::string dir;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("dir", po::value(&dir)->required(), "dataset directory")(
      "quiet", "no progress output");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse(args, desc, &pos, vm, "usage: gantry data verify DIR   (exit 0: clean, 3: the first bad file is named)"))
    return 0;
  int64_t n = data::verify_dataset(dir, !vm.count("quiet"));
  std::printf("%s: ok (%lld images, checksums and structure match the manifest)\n", dir.c_str(),
              static_cast<long long>(n));
  return 0;
}

// Sequential read() of every shard file in 4 MiB blocks: the rate the disk/page cache can deliver.
double raw_read_mb_per_s(const data::ShardedDataset& ds) {
  std::vector<char> buf(4 << 20);
  uint64_t bytes = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& s : ds.manifest().shards) {
    std::string path = (fs::path(ds.dir()) / s.file).string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw DataError(at(path, "cannot open"));
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) bytes += static_cast<uint64_t>(n);
    ::close(fd);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(bytes) / 1e6 / s;
}

int bench(const Args& args) {
  std::string dir;
  data::LoaderOptions o;
  int64_t steps = 0;
  double seconds = 0;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("dir", po::value(&dir)->required(), "dataset directory")(
      "batch", po::value(&o.global_batch)->default_value(256), "batch size")(
      "workers", po::value(&o.workers)->default_value(2), "loader threads")(
      "prefetch", po::value(&o.prefetch)->default_value(4), "batches in flight")(
      "flip", po::bool_switch(&o.flip), "random horizontal flips")("no-shuffle", "read in dataset order")(
      "uint8", "deliver uint8 NHWC batches (no float conversion: what a GPU run uses)")(
      "steps", po::value(&steps)->default_value(0), "batches to time (0: one epoch, at most --seconds)")(
      "seconds", po::value(&seconds)->default_value(20.0), "stop timing after this long")(
      "seed", po::value(&o.seed)->default_value(0), "shuffle seed")(
      "raw", "first time a sequential read of all shard files (twice: the first pass warms the page cache)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse(args, desc, &pos, vm, "usage: gantry data bench DIR [--batch B] [--workers W] [--raw]")) return 0;
  o.shuffle = !vm.count("no-shuffle");
  if (vm.count("uint8")) o.output = data::LoaderOutput::kUint8;
  auto ds = data::ShardedDataset::open(dir);
  double raw = 0;
  if (vm.count("raw")) {
    raw_read_mb_per_s(*ds);  // warms the page cache
    for (int pass = 0; pass < 3; ++pass) raw = std::max(raw, raw_read_mb_per_s(*ds));  // the best pass: a high bar
    std::printf("raw sequential read: %.1f MB/s (%.0f images/s)\n", raw,
                raw * 1e6 / static_cast<double>(ds->image_bytes()));
  }
  data::Loader loader(ds, o);
  if (steps <= 0) steps = loader.sampler().steps_per_epoch();
  loader.next();  // warm-up: threads started, first shards opened
  auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0;
  double el = 0;
  for (; done < steps; ++done) {
    loader.next();
    el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (el > seconds) {
      ++done;
      break;
    }
  }
  double images = static_cast<double>(done * o.global_batch);
  double mb = images * static_cast<double>(ds->image_bytes()) / 1e6;
  std::printf(
      "loader: %.0f images/s, %.1f MB/s (uint8 source bytes), %lld batches of %lld, workers %u, prefetch %u, "
      "shuffle %s, output %s, %.2f s\n",
      images / el, mb / el, static_cast<long long>(done), static_cast<long long>(o.global_batch), o.workers, o.prefetch,
      o.shuffle ? "on" : "off", vm.count("uint8") ? "uint8 NHWC" : "float NCHW", el);
  if (raw > 0) std::printf("loader / raw: %.1f%%\n", 100.0 * mb / el / raw);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("peak RSS: %.1f MiB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
  return 0;
}

}  // namespace

int data_command(const Args& args) {
  const char* usage = "usage: gantry data convert|inspect|verify|bench [options]   (--help on each)";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::puts(usage);
    return args.empty() ? 2 : 0;
  }
  Args rest(args.begin() + 1, args.end());
  if (args[0] == "convert") return convert(rest);
  if (args[0] == "inspect") return inspect(rest);
  if (args[0] == "verify") return verify(rest);
  if (args[0] == "bench") return bench(rest);
  throw UsageError("data " + args[0] + ": unknown subcommand (convert, inspect, verify, bench)");
}

}  // namespace gantry::cli
