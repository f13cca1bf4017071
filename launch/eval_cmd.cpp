// gantry eval --checkpoint RUN_DIR|CHECKPOINT [--out FILE] [--eval.features RUN_DIR] [--eval.parzen true] ...
// Rebuilds the recipe from a checkpoint (its own resolved configuration, plus --section.key overrides),
// then, across every rank launched: the recipe's held-out metrics over the whole held-out set, and for
// a generator the scores of its samples (FID / KID in a classifier's or Inception's features, Parzen).
#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fs.h"
#include "dist/mpi_runtime.h"
#include "run_setup.h"
#include "train/device_setup.h"
#include "train/evaluation.h"

namespace fs = std::filesystem;

namespace gantry::cli {

namespace {

const char* kEvalUsage =
    "usage: gantry eval --checkpoint RUN_DIR|CHECKPOINT [--out FILE] [--SECTION.KEY VALUE ...]\n"
    "  --checkpoint PATH   a checkpoint directory, or a run directory (its newest checkpoint that verifies)\n"
    "  --out FILE          the JSON written (default RUN_DIR/eval/<checkpoint>.json)\n"
    "The checkpoint's own configuration is used; keys given here override it, e.g.\n"
    "  --eval.features RUN_DIR     FID / KID of samples in a classifier run's features\n"
    "  --eval.inception FILE       ... in a TorchScript Inception-v3's pool features\n"
    "  --eval.samples N            generated images (default 10000)\n"
    "  --eval.parzen true          Parzen-window log-likelihood of the held-out set under the samples\n"
    "  --data.eval_path DIR        the held-out set;  --vae.iwae_k K  the VAE's importance-weighted bound\n"
    "(gantry train --help lists every key). Every rank launched takes its share; the scores do not depend\n"
    "on the number of ranks.\n";

}  // namespace

int eval_command(const Args& args, MpiRuntime& mpi) {
  const Schema schema = full_schema();
  const ParsedArgs parsed = parse_args(args, {"checkpoint", "out"});
  const DistContext& ctx = mpi.context();
  const bool root = ctx.rank == 0;
  if (parsed.help) {
    if (root) std::cout << kEvalUsage;
    return 0;
  }
  if (parsed.get("checkpoint").empty())
    throw UsageError("--checkpoint: required (a run directory or a checkpoint directory)");

  at::set_num_threads(intra_op_threads(ctx, 0));
  const torch::Device device = rank_device(ctx);
  CommOptions comm_options;  // the MPI backend whatever the run trained with: a few small reductions
  comm_options.device = device;
  auto comm = make_communicator("mpi", comm_options);

  Restored model = restore_run(schema, *comm, device, parsed.get("checkpoint"), parsed.overrides);
  use_run_threads(ctx, *model.config);
  std::shared_ptr<void> feature_net;
  open_feature_space(schema, *comm, device, *model.config, *model.setup, feature_net);
  const Values values =
      evaluate_run(*comm, *model.loaded.recipe, model.setup->streams, *model.config, model.setup->features);
  if (!root) return 0;

  const fs::path ckpt(model.loaded.from.dir);
  const fs::path run_dir =
      ckpt.parent_path().filename() == "checkpoints" ? ckpt.parent_path().parent_path() : ckpt.parent_path();
  const std::string out = parsed.get("out", (run_dir / "eval" / (ckpt.filename().string() + ".json")).string());
  nlohmann::json record = {{"checkpoint", model.loaded.from.dir},
                           {"step", model.loaded.from.meta.step},
                           {"recipe", model.config->str("run.recipe")},
                           {"world_size", ctx.world_size},
                           {"held_out", model.config->str("data.eval_path")},
                           {"values", nlohmann::json::object()}};
  for (const auto& [k, v] : values) record["values"][k] = v;
  if (model.setup->features) record["features"] = model.setup->feature_space;
  if (!fs::path(out).parent_path().empty()) fs::create_directories(fs::path(out).parent_path());
  write_file_atomic(out, record.dump(2) + "\n");
  std::printf("eval of %s (step %lld, %d ranks)\n", model.loaded.from.dir.c_str(),
              static_cast<long long>(model.loaded.from.meta.step), ctx.world_size);
  if (model.setup->features) std::printf("  features: %s\n", model.setup->feature_space.c_str());
  for (const auto& [k, v] : values) std::printf("  %-22s %.6g\n", k.c_str(), v);
  std::printf("written: %s\n", out.c_str());
  return 0;
}

}  // namespace gantry::cli
