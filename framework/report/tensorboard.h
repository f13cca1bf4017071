// TensorBoard event files: `tensorboard --logdir runs/` shows a run's scalars, sample grids and
// configuration. An event file is a sequence of TFRecords (record_frame below), each holding one
// serialized tensorboard.Event (tensorboard_event.proto, a field-compatible subset of TensorFlow's).
// Protobuf stays inside tensorboard.cpp: this header names no protobuf type, so every target that
// includes it compiles without protobuf's headers (the PyPI LibTorch ships other ones).
// To add a kind of summary: a method here that builds its Summary.Value in tensorboard.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace gantry {

// CRC-32C (Castagnoli, the polynomial 0x1EDC6F41, reflected), as TFRecord uses it.
uint32_t crc32c(const void* data, size_t size);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);
// One TFRecord: data length (uint64 little-endian), masked CRC of those 8 bytes, the data, masked CRC of it.
std::string record_frame(const std::string& data);

// Seconds since the Unix epoch: an event's wall_time.
double unix_time_now();

// Appends events to one new file in a directory. Every write is flushed (a TensorBoard pointed at the
// run shows it at once); a failure to write is an EnvironmentError (exit 5) naming the file.
class EventWriter {
 public:
  // Creates `dir`/events.out.tfevents.<unix seconds>.<hostname> and writes the file_version event
  // ("brain.Event:2"). The seconds are at least one past any event file already in `dir`, so the newer
  // file sorts after the older ones, as TensorBoard reads them.
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  const std::string& path() const { return path_; }

  // A SessionLog START at `step`: TensorBoard's reader discards what it has read before at steps >= `step`
  // (events of an earlier session past the checkpoint this one resumes from).
  void add_session_start(int64_t step, double wall_time = unix_time_now());
  // Scalars (one event): each (tag, value) as a float32 simple_value.
  void add_scalars(const std::vector<std::pair<std::string, double>>& values, int64_t step,
                   double wall_time = unix_time_now());
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time = unix_time_now());
  // An image: PNG bytes of a (height, width, channels) picture, channels in {1, 2, 3, 4}.
  void add_image(const std::string& tag, const std::string& png, int height, int width, int channels, int64_t step,
                 double wall_time = unix_time_now());
  // Text for TensorBoard's text plugin (a string tensor; the plugin renders Markdown).
  void add_text(const std::string& tag, const std::string& text, int64_t step, double wall_time = unix_time_now());

 private:
  void write_event(const std::string& serialized_event);

  std::string path_;
  FILE* file_ = nullptr;
};

}  // namespace gantry
