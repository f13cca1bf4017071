// gantry sample --checkpoint RUN_DIR|CHECKPOINT --out FILE.png|DIR [--count N] [--format grid|png|dataset]
//               [--seed S] [--input DIR [--direction a2b|b2a]] [--force] [--shard-size N] [--SECTION.KEY VALUE ...]
// Pictures and sample sets from a trained run, on every rank launched:
//   - a generator's samples: sample i is row i % 100 of chunk i / 100, drawn by the recipe from the generator
//     keyed by (seed, chunk) — the keys gantry eval's sample scores use — so the same seed gives the same
//     images on any number of ranks, and a dataset of eval.samples images holds exactly what eval scored;
//   - a translation recipe (CycleGAN) translates a folder of images (--input) in either direction.
// Rank r takes a contiguous range of chunks (or input files). Output: one PNG grid (rank 0 gathers), one
// PNG per image, or a gantry dataset directory (each rank writes its shards, rank 0 the manifest). A
// directory is written under a temporary name and renamed when complete; an existing one needs --force.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "convert/image.h"
#include "core/errors.h"
#include "core/fs.h"
#include "dist/mpi_runtime.h"
#include "report/image.h"
#include "run_setup.h"
#include "shards/manifest.h"
#include "shards/shard_writer.h"
#include "train/batch_source.h"
#include "train/device_setup.h"
#include "train/run_state.h"

namespace fs = std::filesystem;

namespace gantry::cli {

namespace {

const char* kSampleUsage =
    "usage: gantry sample --checkpoint RUN_DIR|CHECKPOINT --out FILE.png|DIR [options] [--SECTION.KEY VALUE ...]\n"
    "  --checkpoint PATH   a checkpoint directory, or a run directory (its newest checkpoint that verifies)\n"
    "  --out PATH          FILE.png: one grid; DIR: one PNG per image (sample-NNNNNN.png), or a dataset\n"
    "  --count N           images to draw (generators; default 64); with --input: at most N files\n"
    "  --format F          grid | png | dataset (default: grid for FILE.png, else png). dataset: a gantry\n"
    "                      dataset directory (manifest + HDF5 shards) that gantry eval and h5py read\n"
    "  --seed S            the samples' seed (default run.seed: the images gantry eval scores)\n"
    "  --input DIR         translate the images of DIR (PNG, JPEG, WebP; name order) with a translation\n"
    "                      recipe (cyclegan); each one's center square resized to the size it trained at\n"
    "  --direction D       a2b (default: cyclegan's G) or b2a (F)\n"
    "  --shard-size N      images per shard of a dataset (default 10000)\n"
    "  --force             replace an existing output directory\n"
    "A recipe's EMA generator is used when its run keeps one (dcgan.ema > 0). Every rank launched takes a\n"
    "contiguous share; the images do not depend on the number of ranks.\n";

constexpr int64_t kChunk = 100;  // images per sampling call: SampleScoreOptions::chunk, so keys match gantry eval

enum class Format { kGrid, kPng, kDataset };

struct SampleOptions {
  std::string out, input;
  Format format = Format::kGrid;
  int64_t count = 64, shard_size = 10000;
  uint64_t seed = 0;
  bool a_to_b = true, force = false;
};

int64_t positive(const ParsedArgs& p, const std::string& key, int64_t fallback) {
  const std::string v = p.get(key);
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used == v.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  throw UsageError("--" + key + ": '" + v + "' is not a positive integer");
}

SampleOptions parse_options(const ParsedArgs& p, const Config& config) {
  SampleOptions o;
  o.out = p.get("out");
  while (o.out.size() > 1 && o.out.back() == '/') o.out.pop_back();
  if (o.out.empty()) throw UsageError("--out: required (FILE.png for a grid, or a directory)");
  const bool png_file = fs::path(o.out).extension() == ".png";
  const std::string format = p.get("format", png_file ? "grid" : "png");
  if (format == "grid")
    o.format = Format::kGrid;
  else if (format == "png")
    o.format = Format::kPng;
  else if (format == "dataset")
    o.format = Format::kDataset;
  else
    throw UsageError("--format: '" + format + "' (expected grid, png or dataset)");
  if ((o.format == Format::kGrid) != png_file)
    throw UsageError("--out: " + o.out +
                     (png_file ? ": a .png file is a grid (use a directory for --format " + format + ")"
                               : ": a grid is written to a FILE.png"));
  o.count = positive(p, "count", 64);
  o.shard_size = positive(p, "shard-size", 10000);
  o.seed = p.get("seed").empty() ? static_cast<uint64_t>(config.int64("run.seed"))
                                 : static_cast<uint64_t>(positive(p, "seed", 1));
  o.input = p.get("input");
  const std::string direction = p.get("direction", "a2b");
  if (direction != "a2b" && direction != "b2a") throw UsageError("--direction: '" + direction + "' (a2b or b2a)");
  if (o.input.empty() && !p.get("direction").empty()) throw UsageError("--direction: goes with --input DIR");
  o.a_to_b = direction == "a2b";
  o.force = p.options.count("force") > 0;
  return o;
}

// Runs `work` on this rank; if it throws on any rank, every rank throws the lowest such rank's error
// (its exit code and message, prefixed with the rank unless 0), so rank 0 reports it and no rank waits for
// the others in a later collective.
void on_every_rank(Communicator& comm, const std::function<void()>& work) {
  int code = 0;
  std::string what;
  try {
    work();
  } catch (const std::exception& e) {
    code = exit_code_of(e);
    what = error_text(e);
  }
  const int world = comm.world_size();
  const int64_t first = comm.min(code != 0 ? comm.rank() : world);
  if (first == world) return;
  torch::Tensor message = torch::zeros({1024}, torch::kUInt8);
  if (comm.rank() == first) {
    const std::string text = (first > 0 ? "rank " + std::to_string(first) + ": " : std::string()) + what;
    message[0] = code;
    std::memcpy(message.data_ptr<uint8_t>() + 1, text.data(), std::min<size_t>(text.size(), 1022));
  }
  comm.broadcast(message, static_cast<int>(first));
  throw Error(static_cast<ExitCode>(message[0].item<uint8_t>()),
              std::string(reinterpret_cast<const char*>(message.data_ptr<uint8_t>() + 1)));
}

// (n, C, H, W) in [-1, 1] → (n, H, W, C) uint8, rounded as make_grid rounds.
torch::Tensor to_pixels(const torch::Tensor& images) {
  return ((images.to(torch::kFloat32) + 1) / 2 * 255)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8)
      .permute({0, 2, 3, 1})
      .contiguous();
}

// The image files of `dir` (by extension), in name order.
std::vector<fs::path> image_files(const std::string& dir) {
  if (!fs::is_directory(dir)) throw DataError(dir + ": not a directory (--input)");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp"))
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw DataError(dir + ": no PNG, JPEG or WebP files (--input)");
  return files;
}

// One input file as (1, C, H, W) in [-1, 1]: its center square resized to H × W (the size the recipe
// translates at, as the CycleGAN reference's test resizes to its crop size).
torch::Tensor load_image(const fs::path& file, int64_t channels, int64_t height, int64_t width) {
  const std::string bytes = read_file(file.string());
  data::Image img;
  try {
    img = data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), static_cast<int>(channels));
  } catch (const std::exception& e) {
    throw DataError(file.string() + ": " + e.what());
  }
  img = data::resize_area(data::center_crop_square(img), static_cast<int>(height), static_cast<int>(width));
  auto hwc = torch::from_blob(img.pixels.data(), {img.height, img.width, img.channels}, torch::kUInt8);
  return uint8_to_float(hwc.unsqueeze(0));  // (1, H, W, C) → (1, C, H, W)
}

// What this rank writes: images arrive in global order with their global index and file stem.
class Sink {
 public:
  Sink(const SampleOptions& o, const std::string& stage, int rank) : o_(o), stage_(stage), rank_(rank) {}
  void add(const torch::Tensor& images, int64_t first, const std::vector<std::string>& stems) {
    if (o_.format == Format::kGrid) {
      kept_.push_back(images);
      return;
    }
    const torch::Tensor pixels = to_pixels(images);
    for (int64_t i = 0; i < pixels.size(0); ++i) {
      const torch::Tensor p = pixels[i];
      if (o_.format == Format::kDataset) {
        if (!writer_)
          writer_ = std::make_unique<data::ShardWriter>(rank_dir(rank_), p.size(0), p.size(1), p.size(2), false,
                                                        o_.shard_size, 0, "gantry sample");
        writer_->add(p.data_ptr<uint8_t>());
      } else {
        char name[32];
        std::snprintf(name, sizeof name, "sample-%06lld.png", static_cast<long long>(first + i));
        const std::string file = stems.empty() ? name : stems[static_cast<size_t>(i)] + ".png";
        write_png((fs::path(stage_) / file).string(), p.data_ptr<uint8_t>(), static_cast<int>(p.size(0)),
                  static_cast<int>(p.size(1)), static_cast<int>(p.size(2)));
      }
    }
  }
  void finish() {
    if (writer_) writer_->finish();
  }
  torch::Tensor kept() const { return kept_.empty() ? torch::Tensor() : torch::cat(kept_); }
  std::string rank_dir(int rank) const { return (fs::path(stage_) / ("rank-" + std::to_string(rank))).string(); }

 private:
  const SampleOptions& o_;
  std::string stage_;
  int rank_;
  std::vector<torch::Tensor> kept_;
  std::unique_ptr<data::ShardWriter> writer_;
};

// Rank 0: the ranks' shards renumbered in rank order under one manifest.
void merge_shards(const Sink& sink, const std::string& stage, int world) {
  data::Manifest all;
  all.source = "gantry sample";
  for (int r = 0; r < world; ++r) {
    const std::string dir = sink.rank_dir(r);
    if (!fs::exists(fs::path(dir) / "manifest.json")) continue;  // a rank with nothing to write
    const data::Manifest m = data::read_manifest(dir);
    all.height = m.height, all.width = m.width, all.channels = m.channels;
    all.count += m.count;
    for (data::ShardInfo s : m.shards) {
      const std::string name = data::shard_file_name(all.shards.size());
      fs::rename(fs::path(dir) / s.file, fs::path(stage) / name);
      s.file = name;
      all.shards.push_back(s);
    }
    fs::remove_all(dir);
  }
  data::write_manifest(stage, all);
}

// [begin, end) of `total` items for `rank` of `world`, contiguous.
std::pair<int64_t, int64_t> share(int64_t total, int rank, int world) {
  return {total * rank / world, total * (rank + 1) / world};
}

// Every rank's images (n_r, C, H, W) in rank order, on every rank: each share padded to the largest.
torch::Tensor gather_images(Communicator& comm, const torch::Tensor& local, const std::vector<int64_t>& counts,
                            std::vector<int64_t> shape) {
  shape.insert(shape.begin(), *std::max_element(counts.begin(), counts.end()));
  torch::Tensor padded = torch::zeros(shape, torch::kFloat32);
  if (local.defined() && local.size(0) > 0) padded.narrow(0, 0, local.size(0)).copy_(local);
  const torch::Tensor all = comm.world_size() == 1 ? padded.unsqueeze(0) : comm.all_gather(padded);
  std::vector<torch::Tensor> parts;
  for (size_t r = 0; r < counts.size(); ++r) parts.push_back(all[static_cast<int64_t>(r)].narrow(0, 0, counts[r]));
  return torch::cat(parts);
}

// An input shown beside its translation: center-cropped to the output's size, grey repeated to its channels.
torch::Tensor beside(const torch::Tensor& input, const torch::Tensor& output) {
  const int64_t h = output.size(2), w = output.size(3);
  torch::Tensor x = input.narrow(2, (input.size(2) - h) / 2, h).narrow(3, (input.size(3) - w) / 2, w);
  if (x.size(1) != output.size(1)) x = x.size(1) == 1 ? x.repeat({1, output.size(1), 1, 1}) : x.mean(1, true);
  return x;
}

// Rank 0: the staged directory becomes `out` (an existing one, allowed by --force, is replaced).
void publish(const std::string& stage, const std::string& out) {
  if (fs::exists(out)) {
    const std::string old = temp_sibling(out) + ".old";
    fs::rename(out, old);
    fs::rename(stage, out);
    fs::remove_all(old);
  } else {
    fs::rename(stage, out);
  }
  fsync_path(fs::absolute(out).parent_path().string());
}

}  // namespace

int sample_command(const Args& args, MpiRuntime& mpi) {
  const Schema schema = full_schema();
  const ParsedArgs parsed =
      parse_args(args, {"checkpoint", "out", "count", "format", "seed", "input", "direction", "shard-size"}, {"force"});
  const DistContext& ctx = mpi.context();
  const bool root = ctx.rank == 0;
  if (parsed.help) {
    if (root) std::cout << kSampleUsage;
    return 0;
  }
  if (parsed.get("checkpoint").empty())
    throw UsageError("--checkpoint: required (a run directory or a checkpoint directory)");

  at::set_num_threads(intra_op_threads(ctx, 0));
  const torch::Device device = rank_device(ctx);
  CommOptions comm_options;
  comm_options.device = device;
  auto comm = make_communicator("mpi", comm_options);

  Restored model = restore_run(schema, *comm, device, parsed.get("checkpoint"), parsed.overrides);
  const SampleOptions o = parse_options(parsed, *model.config);
  use_run_threads(ctx, *model.config);
  Recipe& recipe = *model.loaded.recipe;
  const std::string recipe_name = model.config->str("run.recipe");

  // What is drawn: chunks of samples, or (a recipe that translates: two streams and a translation) files.
  const auto& streams = model.setup->streams;
  const auto probe = [&](const DataShape& s) { return torch::zeros({1, s.channels, s.height, s.width}); };
  const bool translates = streams.size() >= 2 && recipe.translate(probe(streams[0].shape), true).defined();
  if (o.input.empty() && translates)
    throw UsageError("recipe " + recipe_name + " translates images: give --input DIR (and --direction a2b|b2a)");
  if (!o.input.empty() && !translates)
    throw UsageError("--input: recipe " + recipe_name +
                     " does not translate images (a translation recipe does: cyclegan)");
  std::vector<fs::path> files;
  const DataShape domain = streams[translates && !o.a_to_b ? 1 : 0].shape;
  if (translates) {
    files = image_files(o.input);
    if (parsed.options.count("count") && static_cast<int64_t>(files.size()) > o.count)
      files.resize(static_cast<size_t>(o.count));
  }
  // (C, H, W) of what is drawn: the translation of the domain's probe, or the data the recipe models.
  const torch::Tensor out_probe = translates ? recipe.translate(probe(domain), o.a_to_b) : probe(domain);
  const c10::IntArrayRef out_shape = out_probe.sizes().slice(1);
  const int64_t items = translates ? static_cast<int64_t>(files.size()) : (o.count + kChunk - 1) / kChunk;
  const int64_t images = translates ? items : o.count;
  if (o.format == Format::kGrid && images > 4096)
    throw UsageError("--count: " + std::to_string(images) + " images in one grid (at most 4096; use a directory)");

  // The output directory's temporary name, the same on every rank; an existing output is kept unless --force.
  const std::string stage = o.out + ".tmp-sample";
  on_every_rank(*comm, [&] {
    if (!root) return;
    if (o.format != Format::kGrid && fs::exists(o.out) && !o.force)
      throw UsageError(o.out + ": already exists (add --force to replace it)");
    if (fs::exists(o.out) && !fs::is_directory(o.out) && o.format != Format::kGrid)
      throw UsageError(o.out + ": exists and is not a directory");
    fs::remove_all(stage);
    fs::create_directories(o.format == Format::kGrid ? fs::absolute(o.out).parent_path() : fs::path(stage));
  });

  Sink sink(o, stage, ctx.rank);
  const auto [begin, end] = share(items, ctx.rank, ctx.world_size);
  on_every_rank(*comm, [&] {
    for (int64_t i = begin; i < end; ++i) {
      if (translates) {
        const torch::Tensor x = load_image(files[static_cast<size_t>(i)], domain.channels, out_shape[1], out_shape[2]);
        torch::Tensor y = recipe.translate(x, o.a_to_b);
        if (o.format == Format::kGrid) y = torch::cat({beside(x, y), y});  // input, then its translation
        sink.add(y, i, {files[static_cast<size_t>(i)].stem().string()});
        continue;
      }
      at::Generator gen = keyed_generator(o.seed, static_cast<uint64_t>(RngStream::kScore), static_cast<uint64_t>(i));
      const torch::Tensor chunk = recipe.sample(kChunk, gen);
      if (!chunk.defined() || chunk.dim() != 4 || chunk.size(0) != kChunk)
        throw UsageError("recipe " + recipe_name + " draws no images (it is not a generative model)");
      if (chunk.sizes().slice(1) != out_shape)
        throw UsageError("recipe " + recipe_name + " drew samples of another shape than its data's");
      sink.add(chunk.narrow(0, 0, std::min(kChunk, o.count - i * kChunk)), i * kChunk, {});
    }
    sink.finish();
  });

  std::vector<int64_t> counts;  // images (grid tiles) of each rank
  for (int r = 0; r < ctx.world_size; ++r) {
    const auto [b, e] = share(items, r, ctx.world_size);
    counts.push_back(translates ? 2 * (e - b) : std::max<int64_t>(0, std::min(e * kChunk, o.count) - b * kChunk));
  }
  torch::Tensor grid;
  if (o.format == Format::kGrid) grid = gather_images(*comm, sink.kept(), counts, out_shape.vec());
  on_every_rank(*comm, [&] {
    if (!root) return;
    if (o.format == Format::kGrid) {
      const int64_t pairs = grid.size(0) / 2;
      const int cols = translates ? 2 * static_cast<int>(std::ceil(std::sqrt(static_cast<double>(pairs)))) : 0;
      save_grid(o.out, grid, cols);
      return;
    }
    if (o.format == Format::kDataset) merge_shards(sink, stage, ctx.world_size);
    publish(stage, o.out);
  });
  if (root)
    std::printf("%s %lld images of %s (step %lld, %d rank%s) → %s\n", translates ? "translated" : "sampled",
                static_cast<long long>(images), model.loaded.from.dir.c_str(),
                static_cast<long long>(model.loaded.from.meta.step), ctx.world_size, ctx.world_size == 1 ? "" : "s",
                o.out.c_str());
  return 0;
}

}  // namespace gantry::cli
