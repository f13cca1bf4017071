// TensorBoard event files. Without Python: CRC-32C against its published check values, the TFRecord
// framing byte for byte, an event file's records and its first event, a clear exit-5 error where the
// file cannot be made. End to end: `gantry train` with a resume from an earlier checkpoint, then
// tests/report/check_tensorboard.py reads the run with TensorBoard's own reader (GANTRY_TOOLS_PYTHON, which
// launch/setup.sh installs) and compares it with metrics.jsonl, samples/ and config.ini.
#include "report/tensorboard.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "support/testing.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::read_bytes;
using testing::run_command;
using testing::ScratchDir;

// The `bytes`-byte little-endian number at `at`.
uint64_t little_endian(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s.at(at + i));
  return v;
}
uint64_t le64(const std::string& s, size_t at) {
  return little_endian(s, at, 8);
}
uint32_t le32(const std::string& s, size_t at) {
  return static_cast<uint32_t>(little_endian(s, at, 4));
}

// The payloads of a file of TFRecords, every CRC checked.
std::vector<std::string> read_records(const std::string& bytes) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < bytes.size()) {
    if (at + 12 > bytes.size()) {
      ADD_FAILURE() << "a torn record header at byte " << at;
      break;
    }
    const uint64_t n = le64(bytes, at);
    EXPECT_EQ(le32(bytes, at + 8), masked_crc32c(bytes.data() + at, 8)) << "length CRC of record " << out.size();
    if (at + 16 + n > bytes.size()) {
      ADD_FAILURE() << "a torn record at byte " << at;
      break;
    }
    std::string data = bytes.substr(at + 12, n);
    EXPECT_EQ(le32(bytes, at + 12 + n), masked_crc32c(data.data(), data.size())) << "data CRC of record " << out.size();
    out.push_back(std::move(data));
    at += 16 + n;
  }
  return out;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(Crc32c, MatchesThePublishedCheckValues) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the CRC catalogue's check value for CRC-32C
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 (iSCSI), B.4
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // TFRecord's mask, rotate right by 15 and add 0xa282ead8 (TensorBoard's masked_crc32c gives the same).
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
}

TEST(RecordFrame, IsLengthCrcDataCrcLittleEndian) {
  const std::string framed = record_frame("123456789");
  ASSERT_EQ(framed.size(), 8 + 4 + 9 + 4u);
  EXPECT_EQ(framed.substr(0, 8), std::string("\x09\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(le32(framed, 8), 0x3971F937u);  // masked CRC-32C of those 8 bytes
  EXPECT_EQ(framed.substr(12, 9), "123456789");
  EXPECT_EQ(framed.substr(21), std::string("\xE5\xB0\x8A\xC7", 4));  // 0xC78AB0E5, little-endian
  EXPECT_EQ(read_records(framed + record_frame("") + record_frame(std::string(300, 'x'))).size(), 3u);
}

TEST(EventWriter, StartsWithTheFileVersionAndSortsAfterEarlierFiles) {
  ScratchDir dir("tensorboard");
  std::string first;
  {
    EventWriter w(dir.path());
    first = w.path();
    w.add_session_start(1);
    w.add_scalars({{"loss", 0.5}, {"lr", 1e-3}}, 10);
    w.add_image("samples", "not really a png", 2, 3, 1, 10);
    w.add_text("config", "[run]\nseed = 1\n", 0);
    // Flushed at every event: the file is whole while the writer is open.
    const auto records = read_records(read_bytes(first));
    ASSERT_EQ(records.size(), 5u);
    // wall_time (field 1, fixed64), step 0 (default, not written), file_version (field 3): "brain.Event:2".
    ASSERT_EQ(records[0].size(), 1 + 8 + 2 + 13u);
    EXPECT_EQ(records[0][0], '\x09');
    EXPECT_EQ(records[0].substr(9), std::string("\x1a\x0d") + "brain.Event:2");
    EXPECT_NE(records[2].find("loss"), std::string::npos);
    EXPECT_NE(records[3].find("not really a png"), std::string::npos);
    EXPECT_NE(records[4].find("seed = 1"), std::string::npos);
  }
  EXPECT_NE(fs::path(first).filename().string().find("events.out.tfevents."), std::string::npos);
  EventWriter second(dir.path());  // within the same second: still a new file, sorted after the first
  EXPECT_EQ(event_files(dir.path()), (std::vector<std::string>{first, second.path()}));
}

TEST(EventWriter, AFileThatCannotBeMadeIsAnEnvironmentError) {
  ScratchDir dir("tensorboard");
  testing::write_bytes(dir / "plain-file", "x");
  try {
    EventWriter w(dir / "plain-file");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kEnvironment);
    EXPECT_NE(std::string(e.what()).find("plain-file/events.out.tfevents."), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

// A short VAE run logging every 2 steps, sampling every 5, evaluating every 10; then a resume from its
// step-10 checkpoint to step 24, which rewrites steps 11-20 (metrics.jsonl drops the first session's lines
// past 10; TensorBoard must drop its events there too). The checker must pass on the run and fail on a
// metrics.jsonl with one value changed.
TEST(TensorBoardTrain, TensorBoardsReaderShowsEveryMetricOnceAfterAResume) {
  const std::string python = GANTRY_TOOLS_PYTHON;
  ASSERT_TRUE(fs::exists(python)) << "no test-tools Python at " << python
                                  << " (GANTRY_TOOLS_PYTHON): run launch/setup.sh, which installs "
                                     "launch/test-tools.txt (TensorBoard's reader) for this build";
  auto probe = run_command(python + " -c 'import tensorboard'");
  ASSERT_EQ(probe.exit_code, 0) << python << " cannot import tensorboard: run launch/setup.sh\n" << probe.output;

  ScratchDir dir("tensorboard-train");
  const std::string gantry = GANTRY_BIN;
  for (auto [split, limit] : {std::pair{"train", 512}, std::pair{"t10k", 64}}) {
    auto r = testing::convert_fashion_mnist(split, limit, dir / split);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string train = gantry + " train --config " + GANTRY_SOURCE_DIR +
                            "/experiments/vae_fashion_mnist.ini --train.threads 1 --data.workers 1 --data.path " +
                            (dir / "train") + " --data.eval_path " + (dir / "t10k") +
                            " --train.batch_size 32 --train.log_every 2 --train.sample_every 5 --train.eval_every 10"
                            " --train.checkpoint_every 10 --train.eval_batches 1 --vae.hidden 32 --vae.latent 4";
  const std::string run = dir / "run";
  auto first = run_command(train + " --run-dir " + run + " --train.steps 20");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto resumed =
      run_command(train + " --run-dir " + run + " --train.steps 24 --resume " + run + "/checkpoints/step-00000010");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  ASSERT_EQ(event_files(run).size(), 2u) << "one event file per session";

  const std::string check = python + " " + GANTRY_SOURCE_DIR + "/tests/report/check_tensorboard.py ";
  auto ok = run_command(check + run);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("check_tensorboard: ok"), std::string::npos) << ok.output;

  // The checker can fail: one logged value changed in metrics.jsonl.
  const std::string metrics = read_bytes(run + "/metrics.jsonl");
  const size_t lr = metrics.find("\"lr\":");
  ASSERT_NE(lr, std::string::npos);
  const size_t end = metrics.find_first_of(",}", lr);
  testing::write_bytes(run + "/metrics.jsonl", metrics.substr(0, lr) + "\"lr\":0.123" + metrics.substr(end));
  auto bad = run_command(check + run);
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("lr"), std::string::npos) << bad.output;

  // train.tensorboard = false: no event file.
  auto off = run_command(train + " --run-dir " + (dir / "off") + " --train.steps 2 --train.tensorboard false");
  ASSERT_EQ(off.exit_code, 0) << off.output;
  EXPECT_TRUE(event_files(dir / "off").empty());
}

}  // namespace
}  // namespace gantry
