// Evaluation of a trained recipe, shared by the trainer (train.eval_every) and `gantry eval`:
//   - held-out metrics: the recipe's own evaluate() (ELBO and IWAE, bits/dim, accuracy, ...) over a
//     held-out stream, each rank its share, averaged across ranks;
//   - sample scores: images the recipe generates compared with real ones — the Fréchet distance and
//     KID in a feature space (a classifier's embedding, or Inception-v3's pool features), and the
//     Parzen-window log-likelihood of real images under the samples with the bandwidth chosen on a
//     validation split (Goodfellow et al. 2014; the f-GAN paper's table).
// Distributed: every rank draws its share of the samples and embeds its share of the real images;
// moments and sums are reduced. Samples are drawn in chunks keyed by chunk index (chunk c from
// keyed_generator(seed, kScore, c), rank r draws chunks r, r + W, ...), so the sample set — and every
// score — is the same on any world size (up to the order of float64 sums).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/batch_source.h"
#include "train/recipe.h"
#include "train/run_state.h"
#include "train/step_context.h"
#include "train/trainer.h"

namespace gantry {

using Values = std::vector<std::pair<std::string, double>>;

// Named scalars averaged across ranks (same names, same order on every rank): one small all-reduce.
Values average_across(Communicator& comm, const Losses& sums, double divisor);

// The recipe's held-out metrics over `batches` batches of `eval` (0: its whole epoch), BatchNorm
// statistics averaged over ranks, random numbers keyed by (seed, kEval) (Recipe::evaluate). Collective.
Values evaluate_held_out(Communicator& comm, Recipe& recipe, BatchSource& eval, int64_t batches, uint64_t seed);

// A recipe rebuilt from a checkpoint for evaluation or sampling: its networks and state restored
// (rank 0's networks broadcast). `setup` gives the configuration, device, streams' shapes and factory.
struct LoadedRecipe {
  std::unique_ptr<GradSync> sync;
  std::unique_ptr<StepContext> step;
  std::unique_ptr<Recipe> recipe;
  ResumePoint from;
};
LoadedRecipe load_recipe(const TrainSetup& setup, const ResumePoint& from);

struct SampleScoreOptions {
  int64_t samples = 10000;  // eval.samples: generated images, rounded up to whole chunks on every rank
  int64_t chunk = 100;      // images per sampling call
  int64_t kid_subsets = 100, kid_subset_size = 1000;
  bool parzen = false;
  int64_t parzen_validation = 1000;   // training images that choose the bandwidth
  std::vector<double> parzen_sigmas;  // candidates; empty: 20 from 0.05 to 1 (pixels in [0, 1])
  uint64_t seed = 0;
};
SampleScoreOptions parse_sample_scores(const Config& config);  // eval.*, run.seed

// Held-out metrics of the first (main) stream, then — with `features`, or eval.parzen — the sample scores
// against its whole held-out split (Parzen's validation images from its training split); for a recipe that
// translates between two streams, the translation scores instead. What an evaluation of the trainer and
// gantry eval compute. Collective.
Values evaluate_run(Communicator& comm, Recipe& recipe, const std::vector<StreamSource>& streams, const Config& config,
                    const FeatureFn& features);

// Scores of the recipe's samples against `real_batches` batches of `real` (each rank its share): with
// `features`, "fid", "kid", "kid_std" (over subsets); with options.parzen, "parzen_ll" (mean nats per
// real image, pixels in [0, 1]), "parzen_ll_se" (its standard error) and "parzen_sigma", chosen on
// `validation_batches` batches of `validation`; "samples" and "real_images" count what was compared.
// UsageError when the recipe draws no images. Collective.
Values sample_scores(Communicator& comm, Recipe& recipe, BatchSource& real, int64_t real_batches,
                     BatchSource* validation, int64_t validation_batches, const FeatureFn& features,
                     const SampleScoreOptions& options);

// FID / KID of a translation recipe (Recipe::translate) in `features`, both ways over the whole held-out
// splits: its translations of held-out A against held-out B ("fid_a2b", "kid_a2b", "kid_a2b_std") and of
// held-out B against held-out A ("..._b2a"); real images are center-cropped to the translations' size
// (the recipe translates center crops). "translated_a", "translated_b" count the images. Collective.
Values translation_scores(Communicator& comm, Recipe& recipe, BatchSource& eval_a, int64_t batches_a,
                          BatchSource& eval_b, int64_t batches_b, const FeatureFn& features,
                          const SampleScoreOptions& options);

}  // namespace gantry
