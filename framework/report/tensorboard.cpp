#include "report/tensorboard.h"

#include <algorithm>
#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "core/errors.h"
#include "report/doctor.h"
#include "tensorboard_event.pb.h"

namespace gantry {

namespace fs = std::filesystem;

namespace {

const char kPrefix[] = "events.out.tfevents.";

// The Unix seconds of the file name: now, or one past the newest event file already in `dir`.
int64_t file_seconds(const fs::path& dir) {
  int64_t seconds = static_cast<int64_t>(unix_time_now());
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kPrefix, 0) != 0) continue;
    const int64_t taken = std::strtoll(name.c_str() + sizeof kPrefix - 1, nullptr, 10);
    seconds = std::max(seconds, taken + 1);
  }
  return seconds;
}

void put_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_le32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

tensorboard::Event event_at(int64_t step, double wall_time) {
  tensorboard::Event e;
  e.set_step(step);
  e.set_wall_time(wall_time);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string record_frame(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le64(out, data.size());
  put_le32(out, masked_crc32c(out.data(), 8));
  out += data;
  put_le32(out, masked_crc32c(data.data(), data.size()));
  return out;
}

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

EventWriter::EventWriter(const std::string& dir) {
  path_ = (fs::path(dir) / (kPrefix + std::to_string(file_seconds(dir)) + "." + host_name())).string();
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw EnvironmentError(at(path_, "cannot create the TensorBoard event file: " + errno_text(errno)));
  tensorboard::Event e = event_at(0, unix_time_now());
  e.set_file_version("brain.Event:2");
  write_event(e.SerializeAsString());
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

void EventWriter::add_session_start(int64_t step, double wall_time) {
  tensorboard::Event e = event_at(step, wall_time);
  e.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  write_event(e.SerializeAsString());
}

void EventWriter::add_scalars(const std::vector<std::pair<std::string, double>>& values, int64_t step,
                              double wall_time) {
  if (values.empty()) return;
  tensorboard::Event e = event_at(step, wall_time);
  for (const auto& [tag, value] : values) {
    auto* v = e.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  write_event(e.SerializeAsString());
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  add_scalars({{tag, value}}, step, wall_time);
}

void EventWriter::add_image(const std::string& tag, const std::string& png, int height, int width, int channels,
                            int64_t step, double wall_time) {
  tensorboard::Event e = event_at(step, wall_time);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  auto* image = v->mutable_image();
  image->set_height(height);
  image->set_width(width);
  image->set_colorspace(channels);  // 1 grayscale, 2 + alpha, 3 RGB, 4 RGBA: the channel count
  image->set_encoded_image_string(png);
  write_event(e.SerializeAsString());
}

void EventWriter::add_text(const std::string& tag, const std::string& text, int64_t step, double wall_time) {
  tensorboard::Event e = event_at(step, wall_time);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  auto* tensor = v->mutable_tensor();
  tensor->set_dtype(tensorboard::DT_STRING);
  tensor->mutable_tensor_shape();  // rank 0: one string
  tensor->add_string_val(text);
  write_event(e.SerializeAsString());
}

void EventWriter::write_event(const std::string& serialized_event) {
  const std::string record = record_frame(serialized_event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
    throw EnvironmentError(at(path_, "cannot write the TensorBoard event file: " + errno_text(errno)));
}

}  // namespace gantry
