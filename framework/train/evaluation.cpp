#include "train/evaluation.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "eval/feature_distance.h"
#include "eval/parzen.h"
#include "train/train_options.h"

namespace gantry {

namespace {

constexpr uint64_t kKidKey = ~uint64_t{0};  // the KID subsets' generator, beside the sample chunks'

// Rows gathered from every rank, (W, k, rows, ...) as all_gather stacks them, put back in global order:
// global block i·W + r is rank r's block i (chunks of samples; whole global batches of a held-out
// stream, each rank holding rows [r·B/W, (r+1)·B/W) of every batch).
torch::Tensor gather_in_global_order(Communicator& comm, const torch::Tensor& local, int64_t block_rows) {
  const int64_t world = comm.world_size();
  if (world == 1) return local;
  torch::Tensor all = comm.all_gather(local.contiguous());  // (W, n_local, ...)
  std::vector<int64_t> shape = {world, local.size(0) / block_rows, block_rows};
  for (int64_t d = 1; d < local.dim(); ++d) shape.push_back(local.size(d));
  all = all.reshape(shape).transpose(0, 1);  // (blocks, W, rows, ...)
  std::vector<int64_t> out = {local.size(0) * world};
  for (int64_t d = 1; d < local.dim(); ++d) out.push_back(local.size(d));
  return all.reshape(out);
}

torch::Tensor pixels_01(const torch::Tensor& images) {  // (n, C, H, W) in [-1, 1] → (n, CHW) in [0, 1]
  return ((images.to(torch::kCPU, torch::kFloat64) + 1) / 2).flatten(1);
}

// Σ and count of Parzen log-likelihoods of `points` under `samples` for each sigma, summed over ranks.
std::vector<double> parzen_means(Communicator& comm, const torch::Tensor& points, const torch::Tensor& samples,
                                 const std::vector<double>& sigmas) {
  std::vector<double> sums;
  for (double sigma : sigmas) sums.push_back(parzen_log_likelihood(points, samples, sigma).sum().item<double>());
  sums.push_back(static_cast<double>(points.size(0)));
  torch::Tensor t = torch::tensor(sums, torch::kFloat64);
  comm.all_reduce(t, ReduceOp::kSum);
  std::vector<double> means;
  for (size_t i = 0; i < sigmas.size(); ++i)
    means.push_back(t[static_cast<int64_t>(i)].item<double>() / t[-1].item<double>());
  return means;
}

// FID, KID and its spread of `fake` against `real` features (each rank its rows; `fake_rows`, `real_rows`:
// rows per block of the global order), keys prefixed by `name`.
void add_distances(Communicator& comm, const torch::Tensor& fake, int64_t fake_rows, const torch::Tensor& real,
                   int64_t real_rows, const SampleScoreOptions& o, const std::string& name, Values& out) {
  FeatureMoments fake_m(fake.size(1)), real_m(real.size(1));
  fake_m.add(fake);
  real_m.add(real);
  fake_m.all_reduce(comm);
  real_m.all_reduce(comm);
  out.emplace_back("fid" + name, frechet_distance(fake_m.fit(), real_m.fit()));
  at::Generator gen = keyed_generator(o.seed, static_cast<uint64_t>(RngStream::kScore), kKidKey);
  const KidResult kid =
      kernel_distance(gather_in_global_order(comm, fake, fake_rows), gather_in_global_order(comm, real, real_rows),
                      o.kid_subsets, o.kid_subset_size, gen);
  out.emplace_back("kid" + name, kid.mean);
  out.emplace_back("kid" + name + "_std", kid.std);
}

// (n, C, H, W) center-cropped to h x w.
torch::Tensor center(const torch::Tensor& x, int64_t h, int64_t w) {
  return x.narrow(2, (x.size(2) - h) / 2, h).narrow(3, (x.size(3) - w) / 2, w);
}

// Whether `recipe` translates between the first two of `streams` (CycleGAN): a probe at stream A's shape.
bool translates(Recipe& recipe, const std::vector<StreamSource>& streams) {
  if (streams.size() < 2) return false;
  const DataShape& a = streams[0].shape;
  return recipe.translate(torch::zeros({1, a.channels, a.height, a.width}), true).defined();
}

}  // namespace

Values average_across(Communicator& comm, const Losses& sums, double divisor) {
  if (sums.empty()) return {};
  // NCCL reduces device tensors (the losses live there), the MPI backend host ones.
  torch::Device where = torch::kCPU;
  if (comm.backend() == Backend::kNccl)
    for (const auto& [name, value] : sums)
      if (value.is_cuda()) where = value.device();
  std::vector<torch::Tensor> parts;
  for (const auto& [name, value] : sums) parts.push_back(value.reshape({1}).to(where, torch::kFloat64));
  torch::Tensor t = (torch::cat(parts) / divisor).contiguous();
  comm.all_reduce(t, ReduceOp::kAverage);
  t = t.cpu();
  Values out;
  for (size_t i = 0; i < sums.size(); ++i) out.emplace_back(sums[i].first, t[static_cast<int64_t>(i)].item<double>());
  return out;
}

Values evaluate_held_out(Communicator& comm, Recipe& recipe, BatchSource& eval, int64_t batches, uint64_t seed) {
  Values result;
  with_averaged_buffers(comm, recipe, [&] {
    const int64_t n = batches > 0 ? batches : std::max<int64_t>(1, eval.steps_per_epoch());
    result = average_across(comm, recipe.evaluate(eval, n, rng_seed(seed, RngStream::kEval)), 1.0);
  });
  return result;
}

LoadedRecipe load_recipe(const TrainSetup& setup, const ResumePoint& from) {
  const TrainOptions o = parse_train_options(setup.config);
  LoadedRecipe loaded;
  loaded.from = from;
  loaded.sync = std::make_unique<GradSync>(setup.comm, o.sync_options(setup.device.is_cuda()));
  loaded.step = std::make_unique<StepContext>(*loaded.sync, o.step, setup.device.type());
  std::map<std::string, DataShape> shapes;
  for (const auto& st : setup.streams) shapes[st.name] = st.shape;
  loaded.recipe =
      setup.make_recipe(RecipeEnv{setup.config, shapes, setup.device, setup.comm, *loaded.sync, *loaded.step});
  restore_checkpoint(setup.comm, *loaded.recipe, from, setup.device, o.seed, loaded.step.get());
  return loaded;
}

SampleScoreOptions parse_sample_scores(const Config& c) {
  SampleScoreOptions o;
  o.samples = c.int64("eval.samples");
  o.kid_subsets = c.int64("eval.kid_subsets");
  o.kid_subset_size = c.int64("eval.kid_subset_size");
  o.parzen = c.flag("eval.parzen");
  o.parzen_validation = c.int64("eval.parzen_validation");
  o.seed = static_cast<uint64_t>(c.int64("run.seed"));
  return o;
}

Values evaluate_run(Communicator& comm, Recipe& recipe, const std::vector<StreamSource>& streams, const Config& config,
                    const FeatureFn& features) {
  const StreamSource& main = streams.front();
  const SampleScoreOptions o = parse_sample_scores(config);
  if (!main.make_eval) {
    if (features || o.parzen)
      throw UsageError("data.eval_path: FID, KID and Parzen compare samples with the held-out set; none is set");
    return {};
  }
  const TrainOptions t = parse_train_options(config);
  auto eval = main.make_eval();
  Values out = evaluate_held_out(comm, recipe, *eval, t.eval_batches, t.seed);
  if (!features && !o.parzen) return out;
  if (translates(recipe, streams)) {
    if (o.parzen) throw UsageError("eval.parzen: recipe translates images; Parzen windows score a generator's samples");
    if (!streams[1].make_eval)
      throw UsageError("data." + streams[1].name + "_eval_path: FID / KID of translations compare them with domain " +
                       streams[1].name + "'s held-out set; none is set");
    auto a = main.make_eval(), b = streams[1].make_eval();
    const Values scores = translation_scores(comm, recipe, *a, std::max<int64_t>(1, a->steps_per_epoch()), *b,
                                             std::max<int64_t>(1, b->steps_per_epoch()), features, o);
    out.insert(out.end(), scores.begin(), scores.end());
    return out;
  }
  auto real = main.make_eval();
  std::unique_ptr<BatchSource> validation;
  int64_t validation_batches = 0;
  if (o.parzen) {
    validation = main.make_train(DataPosition{});  // a shuffled draw of the training split
    validation_batches = (o.parzen_validation + t.batch_size - 1) / t.batch_size;
  }
  const Values scores = sample_scores(comm, recipe, *real, std::max<int64_t>(1, real->steps_per_epoch()),
                                      validation.get(), validation_batches, features, o);
  out.insert(out.end(), scores.begin(), scores.end());
  return out;
}

Values sample_scores(Communicator& comm, Recipe& recipe, BatchSource& real, int64_t real_batches,
                     BatchSource* validation, int64_t validation_batches, const FeatureFn& features,
                     const SampleScoreOptions& o) {
  const int64_t world = comm.world_size(), rank = comm.rank();
  const int64_t chunks = (o.samples + o.chunk * world - 1) / (o.chunk * world) * world;  // whole rounds
  std::vector<torch::Tensor> ff, fp, rf, rp;
  Values out;
  with_averaged_buffers(comm, recipe, [&] {
    for (int64_t c = rank; c < chunks; c += world) {
      at::Generator gen = keyed_generator(o.seed, static_cast<uint64_t>(RngStream::kScore), static_cast<uint64_t>(c));
      torch::Tensor images = recipe.sample(o.chunk, gen);
      if (!images.defined() || images.dim() != 4 || images.size(0) != o.chunk)
        throw UsageError("eval.samples: recipe draws no images to score (FID, KID and Parzen are for generators)");
      if (features) ff.push_back(features(images).to(torch::kCPU, torch::kFloat32));
      if (o.parzen) fp.push_back(pixels_01(images));
    }
  });
  int64_t real_local = 0;  // this rank's real images
  for (int64_t i = 0; i < real_batches; ++i) {
    torch::Tensor images = images_to_float(real.next().images, torch::kCPU);
    real_local += images.size(0);
    if (features) rf.push_back(features(images).to(torch::kCPU, torch::kFloat32));
    if (o.parzen) rp.push_back(pixels_01(images));
  }
  out.emplace_back("samples", static_cast<double>(chunks * o.chunk));
  out.emplace_back("real_images", static_cast<double>(real_local * world));
  if (features) {
    // KID needs the features themselves: every rank gathers both sets (n·d floats each, once per
    // evaluation) and computes the same subsets.
    add_distances(comm, torch::cat(ff), o.chunk, torch::cat(rf), real_local / std::max<int64_t>(1, real_batches), o, "",
                  out);
  }
  if (o.parzen) {
    if (!validation || validation_batches < 1)
      throw UsageError("eval.parzen: needs a validation split to choose the bandwidth");
    std::vector<double> sigmas = o.parzen_sigmas;
    if (sigmas.empty())
      for (int i = 0; i < 20; ++i) sigmas.push_back(0.05 * std::pow(20.0, i / 19.0));
    torch::Tensor samples = gather_in_global_order(comm, torch::cat(fp), o.chunk);
    std::vector<torch::Tensor> vp;
    for (int64_t i = 0; i < validation_batches; ++i)
      vp.push_back(pixels_01(images_to_float(validation->next().images, torch::kCPU)));
    const std::vector<double> means = parzen_means(comm, torch::cat(vp), samples, sigmas);
    const size_t best = static_cast<size_t>(std::max_element(means.begin(), means.end()) - means.begin());
    torch::Tensor ll = parzen_log_likelihood(torch::cat(rp), samples, sigmas[best]);
    torch::Tensor t =
        torch::stack({ll.sum(), ll.pow(2).sum(), torch::tensor(static_cast<double>(ll.size(0)), torch::kFloat64)});
    comm.all_reduce(t, ReduceOp::kSum);
    const double n = t[2].item<double>(), mean = t[0].item<double>() / n;
    const double var = std::max(0.0, t[1].item<double>() / n - mean * mean) * n / std::max(1.0, n - 1);
    out.emplace_back("parzen_ll", mean);
    out.emplace_back("parzen_ll_se", std::sqrt(var / n));
    out.emplace_back("parzen_sigma", sigmas[best]);
  }
  return out;
}

Values translation_scores(Communicator& comm, Recipe& recipe, BatchSource& eval_a, int64_t batches_a,
                          BatchSource& eval_b, int64_t batches_b, const FeatureFn& features,
                          const SampleScoreOptions& o) {
  // This rank's share of one held-out split: its images' features and their translations' features.
  struct Side {
    torch::Tensor real, translated;
    int64_t rows = 0, count = 0;  // per batch, on this rank
  };
  auto embed = [&](BatchSource& eval, int64_t batches, bool a_to_b) {
    Side side;
    std::vector<torch::Tensor> real, translated;
    for (int64_t i = 0; i < batches; ++i) {
      const torch::Tensor images = images_to_float(eval.next().images, torch::kCPU);
      const torch::Tensor out = recipe.translate(images, a_to_b).to(torch::kCPU);
      translated.push_back(features(out).to(torch::kCPU, torch::kFloat32));
      real.push_back(features(center(images, out.size(2), out.size(3))).to(torch::kCPU, torch::kFloat32));
      side.count += images.size(0);
    }
    side.real = torch::cat(real);
    side.translated = torch::cat(translated);
    side.rows = side.count / std::max<int64_t>(1, batches);
    return side;
  };
  Side a, b;
  with_averaged_buffers(comm, recipe, [&] {
    torch::NoGradGuard no_grad;
    a = embed(eval_a, batches_a, true);
    b = embed(eval_b, batches_b, false);
  });
  Values out;
  out.emplace_back("translated_a", static_cast<double>(a.count * comm.world_size()));
  out.emplace_back("translated_b", static_cast<double>(b.count * comm.world_size()));
  add_distances(comm, a.translated, a.rows, b.real, b.rows, o, "_a2b", out);
  add_distances(comm, b.translated, b.rows, a.real, a.rows, o, "_b2a", out);
  return out;
}

}  // namespace gantry
