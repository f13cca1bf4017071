#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/errors.h"
#include "core/fs.h"
#include "core/log.h"
#include "dist/batch_norm.h"
#include "dist/grad_sync.h"
#include "report/doctor.h"
#include "report/image.h"
#include "report/metrics.h"
#include "report/progress.h"
#include "report/tensorboard.h"
#include "train/device_setup.h"
#include "train/evaluation.h"
#include "train/run_state.h"
#include "train/schedule.h"
#include "train/signals.h"

namespace gantry {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string values_text(const Values& values) {
  std::ostringstream out;
  out.precision(4);
  for (size_t i = 0; i < values.size(); ++i) out << (i ? " " : "") << values[i].first << " " << values[i].second;
  return out.str();
}

// Sums each step's losses on the device (float64, no host sync); take() averages them over the steps
// since the last take and over ranks (collective).
class LossMeter {
 public:
  void add(const Losses& losses) {
    if (sums_.empty()) {
      for (const auto& [name, value] : losses) sums_.emplace_back(name, value.detach().to(torch::kFloat64));
    } else {
      for (size_t i = 0; i < sums_.size(); ++i)
        sums_[i].second = sums_[i].second + losses[i].second.detach().to(torch::kFloat64);
    }
    ++steps_;
  }
  int64_t steps() const { return steps_; }
  Values take(Communicator& comm) {
    Values avg = average_across(comm, sums_, static_cast<double>(std::max<int64_t>(1, steps_)));
    sums_.clear();
    steps_ = 0;
    return avg;
  }

 private:
  Losses sums_;
  int64_t steps_ = 0;
};

class Trainer {
 public:
  explicit Trainer(const TrainSetup& s)
      : s_(s),
        o_(parse_train_options(s.config)),
        comm_(s.comm),
        ctx_(s.comm.context()),
        root_(ctx_.rank == 0),
        run_(s.run_dir) {}

  int run();

 private:
  void open_run_dir();
  void start_or_resume();
  void print_configuration();
  void log_session();
  void open_events();
  void set_learning_rates(int64_t step);
  StepBatches next_batches();
  void log_step(int64_t step);
  void record(const nlohmann::json& rec, bool evaluation);
  void write_samples(int64_t step);
  void write_visuals(int64_t step);
  void evaluate(int64_t step);
  void checkpoint(int64_t step);
  int stopped(int64_t step, Agreement& pending);
  void finish(int64_t step);
  void note(const std::string& line);
  [[noreturn]] void fail(const std::exception& e, int64_t step);

  const TrainSetup& s_;
  const TrainOptions o_;
  Communicator& comm_;
  const DistContext ctx_;
  const bool root_;
  const fs::path run_;
  std::ofstream rank_log_;

  std::unique_ptr<GradSync> sync_;
  std::unique_ptr<StepContext> step_context_;
  std::unique_ptr<Recipe> recipe_;
  std::shared_ptr<BatchNormSync> bn_sync_;    // dist.sync_batchnorm: enabled during train steps
  std::vector<std::vector<double>> base_lr_;  // per optimizer, per param group
  ResumePoint resumed_;
  std::vector<std::pair<std::string, std::string>> facts_;  // runtime_facts() of this process, this session
  std::string machine_;  // kernel_facts(facts_): recorded in checkpoints, compared on resume
  int64_t step_ = 0;
  std::vector<std::unique_ptr<BatchSource>> sources_;  // per stream, in setup order
  StepBatches last_batches_;

  std::optional<MetricsLog> metrics_;  // rank 0 only
  std::optional<EventWriter> events_;  // rank 0 only, train.tensorboard
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<Progress> bar_;
  LossMeter meter_;
  Clock::time_point start_time_ = Clock::now(), log_start_ = Clock::now();
  double stall_total_ = 0, lr_factor_ = 1;
};

// The loop: one step per iteration, everything else at its cadence.
int Trainer::run() {
  open_run_dir();
  start_or_resume();
  if (step_ >= o_.steps) {
    note("nothing to do: the checkpoint is at step " + std::to_string(step_) + ", train.steps is " +
         std::to_string(o_.steps));
    return 0;
  }
  const int64_t total = o_.steps;
  const Cadence& every = o_.cadence;
  bar_ = std::make_unique<Progress>("train", static_cast<uint64_t>(total), "steps", stdout, root_,
                                    static_cast<uint64_t>(step_));
  install_stop_handlers();
  try {
    // The stop vote is non-blocking: started at the end of one step, completed at the end of the next,
    // so it never waits on the slowest rank; every rank reads the same answer at the same step.
    auto stop_vote = comm_.any_async(stop_requested());
    while (step_ < total) {
      set_learning_rates(step_);
      last_batches_ = next_batches();
      {
        BatchNormSync::Scope global_statistics(bn_sync_.get());  // null unless dist.sync_batchnorm
        meter_.add(recipe_->train_step(last_batches_));
      }
      const int64_t step = ++step_;
      if (every.log(step, total)) log_step(step);
      if (every.sample(step, total)) write_samples(step);
      if (every.eval(step, total)) evaluate(step);
      const bool stop = stop_vote->get();
      stop_vote = comm_.any_async(stop_requested());
      if (stop || every.checkpoint(step, total)) checkpoint(step);
      if (stop && step < total) return stopped(step, *stop_vote);
      if (every.checkpoint(step, total) && step != total) write_visuals(step);
    }
    stop_vote->value();  // every agreement is completed
  } catch (const std::exception& e) {
    fail(e, step_);
  }
  finish(step_);
  return 0;
}

void Trainer::open_run_dir() {
  if (o_.batch_size % ctx_.world_size != 0)
    throw UsageError("train.batch_size: " + std::to_string(o_.batch_size) + " does not divide by the world size " +
                     std::to_string(ctx_.world_size) + " (use a multiple of it)");
  if ((o_.batch_size / ctx_.world_size) % o_.step.micro_batches != 0)
    throw UsageError("train.micro_batches: " + std::to_string(o_.step.micro_batches) +
                     " does not divide the per-rank batch " + std::to_string(o_.batch_size / ctx_.world_size) +
                     " (train.batch_size / world size)");
  fs::create_directories(run_ / "samples");
  fs::create_directories(run_ / "logs");
  rank_log_.open(run_ / "logs" / ("rank-" + std::to_string(ctx_.rank) + ".log"), std::ios::app);
}

// Builds the recipe, then loads the checkpoint --resume names (or broadcasts rank 0's fresh networks),
// and opens the data streams at their positions.
void Trainer::start_or_resume() {
  resumed_ = decide_resume(comm_, s_.run_dir, s_.resume, o_.recipe);
  facts_ = runtime_facts();
  machine_ = kernel_facts(facts_);
  apply_kernel_settings(kernel_settings(o_.deterministic, s_.device));
  torch::manual_seed(rng_seed(o_.seed, RngStream::kTrain, static_cast<uint64_t>(ctx_.rank)));
  sync_ = std::make_unique<GradSync>(comm_, o_.sync_options(s_.device.is_cuda()));
  step_context_ = std::make_unique<StepContext>(*sync_, o_.step, s_.device.type());
  std::map<std::string, DataShape> shapes;
  for (const auto& st : s_.streams) shapes[st.name] = st.shape;
  recipe_ = s_.make_recipe(RecipeEnv{s_.config, shapes, s_.device, comm_, *sync_, *step_context_});
  if (o_.sync_batchnorm) {
    bn_sync_ = std::make_shared<BatchNormSync>(comm_);
    int64_t layers = 0;
    for (const auto& [name, net] : recipe_->networks()) layers += attach_batchnorm_sync(*net, bn_sync_, name);
    if (layers == 0)
      note("dist.sync_batchnorm: recipe '" + o_.recipe + "' has no BatchNorm layers, nothing to synchronise");
  }
  for (const auto& [name, opt] : recipe_->optimizers()) {
    base_lr_.emplace_back();
    for (auto& g : opt->param_groups()) base_lr_.back().push_back(g.options().get_lr());
  }
  if (resumed_.dir.empty()) {
    broadcast_networks(comm_, *recipe_);
  } else {
    restore_checkpoint(comm_, *recipe_, resumed_, s_.device, o_.seed, step_context_.get());
    step_ = resumed_.meta.step;
    note("resumed from " + resumed_.dir + " at step " + std::to_string(step_) + " (world size " +
         std::to_string(resumed_.meta.world_size) + " -> " + std::to_string(ctx_.world_size) + ")");
    if (root_ && resumed_.meta.world_size == ctx_.world_size && !resumed_.meta.machine.empty() &&
        resumed_.meta.machine != machine_)
      log_warn("resumed on other kernels than " + checkpoint_name(step_) +
               " was written with (then: " + resumed_.meta.machine + "; now: " + machine_ +
               "): training goes on correctly, but not bit for bit as it would have gone on there");
  }
  for (const auto& st : s_.streams) {
    const auto& positions = resumed_.meta.streams;
    const auto at_pos = positions.find(st.name);
    if (!resumed_.dir.empty() && at_pos == positions.end())
      throw CheckpointError(at(resumed_.dir, "has no position for data stream '" + st.name + "'"));
    sources_.push_back(st.make_train(at_pos == positions.end() ? DataPosition{} : at_pos->second));
  }
  print_configuration();
  log_session();
  if (root_) metrics_.emplace((run_ / "metrics.jsonl").string(), step_);
  if (root_ && o_.tensorboard) open_events();
  checkpointer_ = std::make_unique<Checkpointer>(s_.run_dir, o_.retention);
}

void Trainer::print_configuration() {
  if (!root_) return;
  write_file_atomic((run_ / "config.ini").string(), s_.config.to_ini());
  std::ostringstream table;
  s_.config.print_table(table);
  std::cout << "configuration (* = not the default):\n" << table.str();
  for (const auto& [k, v] : facts_) std::cout << "  " << k << ": " << v << "\n";
  std::cout << "  ranks: " << ctx_.world_size << ", run directory: " << fs::absolute(run_).string() << std::endl;
  if (blas_is_reference()) log_warn("LibTorch uses the reference BLAS (about 10x slower): run launch/setup.sh");
}

// Every rank records in its own log, once a session, what it runs on: a job whose nodes differ (CPU kind,
// kernels, threads: what bitwise reproducibility needs) shows it rank by rank, with no message between ranks.
void Trainer::log_session() {
  rank_log_ << "session from step " << step_ << ", rank " << ctx_.rank << " of " << ctx_.world_size;
  for (const auto& [k, v] : facts_) rank_log_ << "; " << k << ": " << v;
  rank_log_ << std::endl;
}

// A new TensorBoard event file for this session. Its SessionLog START at the first step the session logs
// makes TensorBoard drop what earlier sessions wrote from that step on (past the checkpoint resumed
// from), as metrics.jsonl drops those lines: each step is shown once.
void Trainer::open_events() {
  events_.emplace(run_.string());
  events_->add_session_start(step_ + 1);
  events_->add_text("config", s_.config.to_ini(), step_);
}

void Trainer::set_learning_rates(int64_t step) {
  lr_factor_ = lr_factor(o_.schedule, step, o_.steps, o_.warmup_steps, o_.hold_steps);
  const auto optimizers = recipe_->optimizers();
  for (size_t i = 0; i < optimizers.size(); ++i) {
    auto& groups = optimizers[i].second->param_groups();
    for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(base_lr_[i][g] * lr_factor_);
  }
}

StepBatches Trainer::next_batches() {
  StepBatches batches;
  for (size_t i = 0; i < sources_.size(); ++i) batches[s_.streams[i].name] = sources_[i]->next();
  return batches;
}

void Trainer::log_step(int64_t step) {
  const int64_t steps = meter_.steps();
  const Values avg = meter_.take(comm_);
  const double ips = static_cast<double>(steps * o_.batch_size) / std::max(seconds_since(log_start_), 1e-9);
  log_start_ = Clock::now();
  if (!root_) return;
  nlohmann::json rec = {{"step", step},
                        {"epoch", sources_.front()->position().epoch},
                        {"time", seconds_since(start_time_)},
                        {"images_per_s", ips},
                        {"lr", base_lr_.empty() ? 0.0 : base_lr_[0][0] * lr_factor_}};
  for (const auto& [k, v] : avg) rec[k] = v;
  for (const auto& [group, scaler] : step_context_->scalers()) {  // fp16: the same on every rank
    rec["loss_scale_" + group] = scaler.scale_value();
    rec["skipped_steps_" + group] = scaler.skipped();
  }
  record(rec, false);
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.0f img/s", ips);
  bar_->set(static_cast<uint64_t>(step), std::string(rate) + ", " + values_text(avg));
}

// One line of metrics.jsonl, and its numbers as TensorBoard scalars at its step, tagged with their keys
// (an evaluation's `time` as `eval_time`, so it does not interleave with the step lines' `time`).
void Trainer::record(const nlohmann::json& rec, bool evaluation) {
  metrics_->write(rec);
  if (!events_) return;
  std::vector<std::pair<std::string, double>> scalars;
  for (const auto& [key, value] : rec.items()) {
    if (key == "step" || !value.is_number()) continue;
    scalars.emplace_back(evaluation && key == "time" ? "eval_time" : key, value.get<double>());
  }
  events_->add_scalars(scalars, rec.at("step").get<int64_t>());
}

// A grid of 64 samples: samples/step-N.png, and the same PNG in TensorBoard.
void Trainer::write_samples(int64_t step) {
  if (!root_) return;
  at::Generator gen = keyed_generator(o_.seed, static_cast<uint64_t>(RngStream::kSample));
  torch::Tensor images = recipe_->sample(64, gen);
  if (!images.defined()) return;
  const torch::Tensor grid = make_grid(images);  // (H, W, C) uint8
  const int h = static_cast<int>(grid.size(0)), w = static_cast<int>(grid.size(1)), c = static_cast<int>(grid.size(2));
  const std::string png = encode_png(grid.data_ptr<uint8_t>(), h, w, c);
  write_file_atomic((run_ / "samples" / (checkpoint_name(step) + ".png")).string(), png);
  if (events_) events_->add_image("samples", png, h, w, c, step);
}

void Trainer::write_visuals(int64_t step) {
  if (!root_) return;
  at::Generator gen = keyed_generator(o_.seed, static_cast<uint64_t>(RngStream::kVisuals));
  recipe_->write_visuals((run_ / "samples" / ("recon-" + checkpoint_name(step))).string(), last_batches_, gen);
}

// Held-out metrics of the main stream, with BatchNorm statistics averaged over ranks.
void Trainer::evaluate(int64_t step) {
  const StreamSource& main = s_.streams.front();
  if (!main.make_eval) return;
  const Values result = evaluate_run(comm_, *recipe_, s_.streams, s_.config, s_.features);
  if (result.empty() || !root_) return;
  nlohmann::json rec = {{"step", step}, {"time", seconds_since(start_time_)}};
  for (const auto& [k, v] : result) rec[k] = v;
  if (s_.features) rec["features"] = s_.feature_space;
  record(rec, true);
  note("eval at step " + std::to_string(step) + ": " + values_text(result));
}

// The state in memory on the training thread (collective), persisted by a background thread.
void Trainer::checkpoint(int64_t step) {
  const auto t0 = Clock::now();
  CheckpointMeta meta{step, sources_.front()->position(), {}, ctx_.world_size, o_.recipe, s_.config.to_ini(), {}, {}};
  meta.machine = machine_;
  for (size_t i = 0; i < sources_.size(); ++i) meta.streams[s_.streams[i].name] = sources_[i]->position();
  for (const StreamSource& st : s_.streams) meta.shapes[st.name] = st.shape;
  Snapshot snap = take_snapshot(comm_, *recipe_, std::move(meta), s_.device, step_context_.get());
  const double waited = root_ ? checkpointer_->persist_async(std::move(snap)) : 0;
  const double stall = seconds_since(t0);
  stall_total_ += stall;
  rank_log_ << "checkpoint " << checkpoint_name(step) << ": training stalled " << stall << " s (of which " << waited
            << " s waiting for the previous one)" << std::endl;
}

int Trainer::stopped(int64_t step, Agreement& pending) {
  pending.value();
  checkpointer_->wait();
  bar_->finish("stopped by a signal");
  note("stopped by signal " + std::to_string(stop_signal()) + " at step " + std::to_string(step) +
       " after writing a checkpoint; resume with --resume auto");
  return static_cast<int>(ExitCode::kStopped);
}

void Trainer::finish(int64_t step) {
  write_samples(step);
  evaluate(step);
  write_visuals(step);
  checkpointer_->wait();
  bar_->finish();
  if (!root_) return;
  const double el = seconds_since(start_time_);
  char line[256];
  std::snprintf(line, sizeof line, "done: %lld steps; checkpoint stalls %.3f s in all (%.2f%% of %.1f s)",
                static_cast<long long>(step), stall_total_, 100.0 * stall_total_ / std::max(el, 1e-9), el);
  note(line);
}

void Trainer::note(const std::string& line) {
  rank_log_ << line << std::endl;
  log_info(line, ctx_.rank);
}

// An error raised during training, possibly on this rank alone: end the whole job now rather than leave
// the other ranks in a collective until dist.timeout_s.
void Trainer::fail(const std::exception& e, int64_t step) {
  end_open_terminal_line();  // the error line must not continue the progress bar's
  rank_log_ << "error at step " << step << ": " << e.what() << std::endl;
  if (ctx_.world_size > 1 && s_.abort_job) {
    std::fprintf(stderr, "gantry: error (rank %d, step %lld): %s\n", ctx_.rank, static_cast<long long>(step),
                 error_text(e).c_str());
    std::fflush(stderr);
    s_.abort_job(exit_code_of(e));
  }
  throw;
}

}  // namespace

int run_training(const TrainSetup& setup) {
  Trainer trainer(setup);
  return trainer.run();
}

}  // namespace gantry
