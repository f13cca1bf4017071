#include "checkpoint/checkpoint.h"

#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/checksum.h"
#include "core/errors.h"
#include "core/fs.h"
#include "core/log.h"

namespace gantry {

namespace fs = std::filesystem;
using nlohmann::json;

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// ---- serialisation ----------------------------------------------------------------------------

std::string save_to_bytes(const std::shared_ptr<torch::nn::Module>& module) {
  std::ostringstream out;
  torch::save(module, out);
  return out.str();
}
std::string save_to_bytes(const torch::optim::Optimizer& optimizer) {
  std::ostringstream out;
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(out);
  return out.str();
}
std::string save_to_bytes(const torch::Tensor& tensor) {
  std::ostringstream out;
  torch::save(tensor, out);
  return out.str();
}
void load_from_file(const std::shared_ptr<torch::nn::Module>& module, const std::string& path) {
  try {
    torch::load(module, path);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw CheckpointError(at(path, "does not fit this model (" + msg.substr(0, msg.find('\n')) + ")"));
  }
}
void load_from_file(torch::optim::Optimizer& optimizer, const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw CheckpointError(at(path, "does not fit this optimizer (" + msg.substr(0, msg.find('\n')) + ")"));
  }
}
torch::Tensor load_tensor(const std::string& path) {
  torch::Tensor t;
  try {
    torch::load(t, path);
  } catch (const c10::Error& e) {
    throw CheckpointError(at(path, "unreadable tensor archive"));
  }
  return t;
}

// ---- persisting -------------------------------------------------------------------------------

namespace {

void write_and_sync(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw EnvironmentError(at(path, "cannot create: " + errno_text(errno)));
  bool ok =
      std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw EnvironmentError(at(path, "write failed: " + errno_text(err)));
}

int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() != 13) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  return std::stoll(name.substr(5));
}

void prune(const std::string& run_dir, const Retention& r) {
  auto all = list_checkpoints(run_dir);  // newest first
  for (size_t i = 0; i < all.size(); ++i) {
    int64_t step = step_of(fs::path(all[i]).filename().string());
    bool keep = i == 0 || static_cast<int64_t>(i) < r.keep_last || (r.keep_every > 0 && step % r.keep_every == 0);
    if (!keep) fs::remove_all(all[i]);
  }
}

}  // namespace

std::string Checkpointer::persist(const std::string& run_dir, const Snapshot& s, const Retention& retention) {
  fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  std::string final_dir = (root / checkpoint_name(s.meta.step)).string();
  std::string tmp = temp_sibling(final_dir);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  json files = json::object();
  for (const auto& [name, bytes] : s.files) {
    write_and_sync((fs::path(tmp) / name).string(), bytes);
    Crc32 crc;
    crc.update(bytes.data(), bytes.size());
    files[name] = {{"bytes", bytes.size()}, {"checksum", crc.str()}};
  }
  json positions = json::object();
  for (const auto& [name, p] : s.meta.streams) positions[name] = {{"epoch", p.epoch}, {"index", p.index}};
  json shapes = json::object();
  for (const auto& [name, d] : s.meta.shapes)
    shapes[name] = {{"channels", d.channels}, {"height", d.height}, {"width", d.width}, {"labels", d.has_labels}};
  json manifest = {{"format", "gantry-checkpoint"},
                   {"version", kCheckpointVersion},
                   {"step", s.meta.step},
                   {"epoch", s.meta.data.epoch},
                   {"data_position", {{"epoch", s.meta.data.epoch}, {"index", s.meta.data.index}}},
                   {"data_positions", positions},
                   {"data_shapes", shapes},
                   {"world_size", s.meta.world_size},
                   {"machine", s.meta.machine},
                   {"recipe", s.meta.recipe},
                   {"config", s.meta.config_ini},
                   {"files", files}};
  write_and_sync((fs::path(tmp) / "manifest.json").string(), manifest.dump(2) + "\n");
  fsync_path(tmp);
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // the same step written again (a restarted run)
  fs::rename(tmp, final_dir);
  fsync_path(root.string());
  write_file_atomic((root / "LATEST").string(), checkpoint_name(s.meta.step) + "\n");
  prune(run_dir, retention);
  return final_dir;
}

Checkpointer::Checkpointer(std::string run_dir, Retention retention)
    : run_dir_(std::move(run_dir)), retention_(retention), thread_([this] { loop(); }) {}

Checkpointer::~Checkpointer() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return !busy_; });
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      log_warn(std::string("checkpoint not written: ") + e.what());
    }
  }
}

void Checkpointer::loop() {
  for (;;) {
    Snapshot s;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || pending_.has_value(); });
      if (!pending_) return;
      s = std::move(*pending_);
      pending_.reset();
    }
    std::exception_ptr err;
    try {
      persist(run_dir_, s, retention_);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
      if (err) error_ = err;
    }
    cv_.notify_all();
  }
}

double Checkpointer::persist_async(Snapshot snapshot) {
  auto t0 = std::chrono::steady_clock::now();
  wait();
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::move(snapshot);
    busy_ = true;
  }
  cv_.notify_all();
  return waited;
}

void Checkpointer::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !busy_; });
  if (error_) {
    auto e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

// ---- finding and verifying --------------------------------------------------------------------

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return {};
  for (const auto& e : fs::directory_iterator(root)) {
    int64_t step = step_of(e.path().filename().string());
    if (step >= 0 && e.is_directory()) found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

CheckpointMeta manifest_meta(const json& manifest) {
  CheckpointMeta m;
  m.step = manifest.at("step").get<int64_t>();
  m.data.epoch = manifest.at("data_position").at("epoch").get<int64_t>();
  m.data.index = manifest.at("data_position").at("index").get<int64_t>();
  if (manifest.contains("data_positions"))  // since stop 8; earlier checkpoints have one stream
    for (const auto& [name, p] : manifest.at("data_positions").items())
      m.streams[name] = {p.at("epoch").get<int64_t>(), p.at("index").get<int64_t>()};
  else
    m.streams["train"] = m.data;
  if (manifest.contains("data_shapes"))  // since stop 15
    for (const auto& [name, d] : manifest.at("data_shapes").items())
      m.shapes[name] = {d.at("channels").get<int64_t>(), d.at("height").get<int64_t>(), d.at("width").get<int64_t>(),
                        d.at("labels").get<bool>()};
  m.world_size = manifest.at("world_size").get<int>();
  if (manifest.contains("machine")) m.machine = manifest.at("machine").get<std::string>();  // since stop 17
  m.recipe = manifest.at("recipe").get<std::string>();
  m.config_ini = manifest.at("config").get<std::string>();
  return m;
}

VerifiedCheckpoint verify_checkpoint(const std::string& dir) {
  std::string mpath = (fs::path(dir) / "manifest.json").string();
  if (!fs::is_directory(dir)) throw CheckpointError(at(dir, "no such checkpoint directory"));
  if (!fs::exists(mpath)) throw CheckpointError(at(mpath, "missing (incomplete checkpoint)"));
  VerifiedCheckpoint v;
  v.dir = dir;
  try {
    v.manifest = json::parse(read_file(mpath));
    if (v.manifest.at("version").get<int>() != kCheckpointVersion)
      throw CheckpointError(
          at(mpath, "checkpoint format version " + v.manifest.at("version").dump() + " not supported"));
    v.meta = manifest_meta(v.manifest);
    for (const auto& [name, info] : v.manifest.at("files").items()) {
      std::string path = (fs::path(dir) / name).string();
      if (!fs::exists(path)) throw CheckpointError(at(path, "missing"));
      uint64_t bytes = 0;
      std::string sum = file_checksum(path, &bytes);
      if (bytes != info.at("bytes").get<uint64_t>())
        throw CheckpointError(
            at(path, "size " + std::to_string(bytes) + " bytes, manifest says " + info.at("bytes").dump()));
      if (sum != info.at("checksum").get<std::string>())
        throw CheckpointError(
            at(path, "checksum " + sum + ", manifest says " + info.at("checksum").get<std::string>()));
    }
  } catch (const json::exception& e) {
    throw CheckpointError(at(mpath, std::string("malformed: ") + e.what()));
  } catch (const DataError& e) {  // unreadable file
    throw CheckpointError(e.what());
  }
  return v;
}

std::optional<VerifiedCheckpoint> find_resume(const std::string& run_dir, const std::string& resume) {
  if (resume == "none") return std::nullopt;
  std::string search = run_dir;
  if (resume != "auto") {
    if (fs::exists(fs::path(resume) / "manifest.json")) return verify_checkpoint(resume);
    if (!fs::is_directory(fs::path(resume) / "checkpoints"))
      throw CheckpointError(at(resume, "not a checkpoint or run directory"));
    search = resume;
  }
  auto all = list_checkpoints(search);
  for (const auto& dir : all) {
    try {
      return verify_checkpoint(dir);
    } catch (const CheckpointError& e) {
      log_warn(std::string(e.what()) + "; trying an older checkpoint");
    }
  }
  if (!all.empty()) throw CheckpointError(at(search, "no checkpoint verifies (pass --resume none to start over)"));
  if (resume != "auto") throw CheckpointError(at(search, "has no checkpoints"));
  return std::nullopt;
}

}  // namespace gantry
