// `gantry data ...` on bad input: one line `gantry: error: <file>: <problem>` on stderr, the
// documented exit code, never a crash, an uncaught exception or an HDF5 error stack.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "datasets/data_testing.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// Exit `code`, and stderr is exactly one error line naming `file` and containing `problem`.
void expect_error(const SplitResult& r, int code, const std::string& file, const std::string& problem) {
  EXPECT_EQ(r.exit_code, code) << "stdout: " << r.out << "\nstderr: " << r.err;
  EXPECT_LT(r.exit_code, 128) << "killed by a signal";
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("HDF5-DIAG"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  auto err_lines = lines(r.err);
  ASSERT_EQ(err_lines.size(), 1u) << "stderr: " << r.err;
  const std::string& line = err_lines[0];
  EXPECT_EQ(line.rfind("gantry: error: ", 0), 0u) << line;
  EXPECT_NE(line.find(file), std::string::npos) << "does not name " << file << ": " << line;
  EXPECT_NE(line.find(problem), std::string::npos) << "does not say " << problem << ": " << line;
}

// 20 synthetic 6x6x3 images in shards of 8, 8, 4, made with the CLI.
std::string make_dataset(const ScratchDir& dir, const std::string& name = "ds") {
  std::string out = dir / name;
  auto r = run_gantry("data convert --format synthetic --count 20 --resolution 6 --shard-size 8 --seed 3 --out " + out +
                      " --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

TEST(DataCli, CleanDatasetVerifiesAndInspects) {
  ScratchDir dir("clean");
  std::string ds = make_dataset(dir);
  auto v = run_gantry_split("data verify " + ds + " --quiet");
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find("ok (20 images"), std::string::npos) << v.out;
  EXPECT_EQ(v.err, "");
  auto i = run_gantry_split("data inspect " + ds);
  EXPECT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("20 images"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("[6, 6, 3]"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("shards    3 (shard-00000.h5 ... shard-00002.h5)"), std::string::npos) << i.out;
  auto b = run_gantry_split("data bench " + ds + " --batch 4 --steps 3 --workers 2");
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("images/s"), std::string::npos) << b.out;
}

TEST(DataCli, TruncatedShard) {
  ScratchDir dir("trunc");
  std::string ds = make_dataset(dir);
  std::string shard = ds + "/shard-00001.h5";
  ASSERT_EQ(::truncate(shard.c_str(), static_cast<off_t>(fs::file_size(shard) - 100)), 0);
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "shard-00001.h5", "truncated");
  // Reading it through the loader fails the same way.
  expect_error(run_gantry_split("data bench " + ds + " --batch 4 --workers 2 --no-shuffle"), 3, "shard-00001.h5", "truncated");
}

TEST(DataCli, ChecksumMismatch) {
  ScratchDir dir("checksum");
  std::string ds = make_dataset(dir);
  std::string shard = ds + "/shard-00000.h5";
  const auto size = fs::file_size(shard);
  uint64_t offset = chunk_offset(shard, 3) + 17;  // inside image 3's pixels
  std::string bytes = read_bytes(shard);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5A);
  write_bytes(shard, bytes);
  ASSERT_EQ(fs::file_size(shard), size);
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "shard-00000.h5", "checksum");
}

TEST(DataCli, WrongDtype) {
  ScratchDir dir("dtype");
  for (auto type : {ImagesType::kUint16, ImagesType::kFloat32}) {
    std::string ds = make_dataset(dir, type == ImagesType::kUint16 ? "u16" : "f32");
    rewrite_shard(ds + "/shard-00001.h5", type, 8, 6, 6, 3);
    refresh_manifest(ds);  // bytes and checksum match: only the structure is wrong
    expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "shard-00001.h5", "not uint8");
    expect_error(run_gantry_split("data bench " + ds + " --batch 4 --workers 2 --steps 6 --no-shuffle"), 3, "shard-00001.h5",
                 "not uint8");
  }
}

TEST(DataCli, WrongShape) {
  ScratchDir dir("shape");
  std::string ds = make_dataset(dir);
  rewrite_shard(ds + "/shard-00002.h5", ImagesType::kUint8, 4, 6, 5, 3);
  refresh_manifest(ds);
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "shard-00002.h5", "shape");
  std::string ds2 = make_dataset(dir, "ds2");
  rewrite_shard(ds2 + "/shard-00000.h5", ImagesType::kUint8, 9, 6, 6, 3);
  refresh_manifest(ds2);
  expect_error(run_gantry_split("data verify " + ds2 + " --quiet"), 3, "shard-00000.h5", "shape");
}

TEST(DataCli, NotAnHdf5Shard) {
  ScratchDir dir("nothdf5");
  std::string ds = make_dataset(dir);
  std::string shard = ds + "/shard-00000.h5";
  write_bytes(shard, std::string(fs::file_size(shard), '\x42'));
  refresh_manifest(ds);
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "shard-00000.h5", "HDF5");
  // Opened by a loader thread: still one line, no HDF5 error stack.
  expect_error(run_gantry_split("data bench " + ds + " --batch 4 --workers 2"), 3, "shard-00000.h5", "HDF5");
}

TEST(DataCli, MissingShard) {
  ScratchDir dir("missing");
  std::string ds = make_dataset(dir);
  fs::remove(ds + "/shard-00002.h5");
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "shard-00002.h5", "missing");
}

TEST(DataCli, MissingOrGarbageManifest) {
  ScratchDir dir("manifest");
  std::string ds = make_dataset(dir);
  fs::remove(ds + "/manifest.json");
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "manifest.json", "missing");
  expect_error(run_gantry_split("data inspect " + ds), 3, "manifest.json", "missing");
  write_bytes(ds + "/manifest.json", "\x01\x02 garbage {{{");
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "manifest.json", "JSON");
  expect_error(run_gantry_split("data inspect " + ds), 3, "manifest.json", "JSON");
  write_bytes(ds + "/manifest.json", "{\"version\": 1}");
  expect_error(run_gantry_split("data verify " + ds + " --quiet"), 3, "manifest.json", "malformed");
  write_bytes(ds + "/manifest.json", "");
  expect_error(run_gantry_split("data bench " + ds), 3, "manifest.json", "JSON");
  expect_error(run_gantry_split("data verify " + (dir / "no-such-dir") + " --quiet"), 3, "no-such-dir", "no such");
}

TEST(DataCli, NonIdxInput) {
  ScratchDir dir("notidx");
  write_bytes(dir / "text.txt", "this is a text file, not an idx file at all\n");
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "text.txt") + " --out " + (dir / "out") +
                                " --quiet"),
               3, "text.txt", "not an idx file");
  // A label file passed as images (magic 0x00000801) and vice versa.
  write_bytes(dir / "labels", idx_labels({1, 2, 3}));
  write_bytes(dir / "images", idx_images(3, 2, 2, std::vector<uint8_t>(12, 7)));
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "labels") + " --out " + (dir / "out") +
                                " --quiet"),
               3, "labels", "not an idx file");
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "images") + " --labels " + (dir / "images") +
                                " --out " + (dir / "out") + " --quiet"),
               3, "images", "not an idx file");
  // Label count differs from the image count.
  write_bytes(dir / "labels4", idx_labels({1, 2, 3, 4}));
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "images") + " --labels " + (dir / "labels4") +
                                " --out " + (dir / "out") + " --quiet"),
               3, "labels4", "4 labels for 3 images");
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "absent.gz") + " --out " + (dir / "out") +
                                " --quiet"),
               3, "absent.gz", "no such file");
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(DataCli, TruncatedIdx) {
  ScratchDir dir("truncidx");
  std::vector<uint8_t> pixels(10 * 4 * 4, 9);
  std::string full = idx_images(10, 4, 4, pixels);
  write_bytes(dir / "short", full.substr(0, full.size() - 20));  // header says 10 images, 8.75 present
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "short") + " --out " + (dir / "out") +
                                " --quiet"),
               3, "short", "truncated");
  write_bytes(dir / "header", full.substr(0, 6));
  expect_error(run_gantry_split("data convert --format idx --images " + (dir / "header") + " --out " + (dir / "out") +
                                " --quiet"),
               3, "header", "truncated");
  // A gzip stream cut short.
  write_gz(dir / "full.gz", full);
  std::string gz = read_bytes(dir / "full.gz");
  write_bytes(dir / "cut.gz", gz.substr(0, gz.size() / 2));
  auto r = run_gantry_split("data convert --format idx --images " + (dir / "cut.gz") + " --out " + (dir / "out") + " --quiet");
  expect_error(r, 3, "cut.gz", "");
  // Nothing left behind.
  EXPECT_TRUE(entries_starting_with(dir.path(), "out").empty());
}

TEST(DataCli, ExistingOutputNeedsForce) {
  ScratchDir dir("force");
  std::string ds = make_dataset(dir);
  std::string manifest_before = read_bytes(ds + "/manifest.json");
  auto r = run_gantry_split("data convert --format synthetic --count 12 --resolution 4 --out " + ds + " --quiet");
  expect_error(r, 2, ds, "--force");
  EXPECT_EQ(read_bytes(ds + "/manifest.json"), manifest_before);
  EXPECT_EQ(run_gantry("data verify " + ds + " --quiet").exit_code, 0);
  EXPECT_TRUE(entries_starting_with(dir.path(), "ds.").empty());
  auto forced = run_gantry_split("data convert --format synthetic --count 12 --resolution 4 --out " + ds + " --force --quiet");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  auto inspect = run_gantry("data inspect " + ds);
  EXPECT_NE(inspect.output.find("12 images"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("[4, 4, 3]"), std::string::npos) << inspect.output;
  EXPECT_FALSE(fs::exists(ds + "/shard-00001.h5")) << "old shards left in the replaced output";
  EXPECT_EQ(run_gantry("data verify " + ds + " --quiet").exit_code, 0);
  EXPECT_EQ(entries_starting_with(dir.path(), "ds"), std::vector<std::string>{"ds"}) << "temporary or old dirs left";
}

TEST(DataCli, UsageErrors) {
  ScratchDir dir("usage");
  auto unknown = run_gantry_split("data convert --format tiff --out " + (dir / "out"));
  expect_error(unknown, 2, "--format", "tiff");
  auto no_images = run_gantry_split("data convert --format idx --out " + (dir / "out"));
  expect_error(no_images, 2, "--images", "required");
  auto no_out = run_gantry_split("data convert --format idx --images x");
  EXPECT_EQ(no_out.exit_code, 2) << no_out.err;
  EXPECT_EQ(lines(no_out.err).size(), 1u) << no_out.err;
  EXPECT_NE(no_out.err.find("out"), std::string::npos) << no_out.err;
  auto bad_option = run_gantry_split("data convert --format idx --bogus 1 --out " + (dir / "out"));
  EXPECT_EQ(bad_option.exit_code, 2) << bad_option.err;
  EXPECT_NE(bad_option.err.find("bogus"), std::string::npos) << bad_option.err;
  auto bad_number = run_gantry_split("data convert --format synthetic --count many --resolution 4 --out " + (dir / "out"));
  EXPECT_EQ(bad_number.exit_code, 2) << bad_number.err;
  auto bad_shard = run_gantry_split("data convert --format synthetic --count 4 --resolution 4 --shard-size 0 --out " +
                                    (dir / "out") + " --quiet");
  expect_error(bad_shard, 2, "--shard-size", "positive");
  auto bad_max = run_gantry_split("data convert --format synthetic --count 4 --resolution 4 --max-bad 2 --out " +
                                  (dir / "out") + " --quiet");
  expect_error(bad_max, 2, "--max-bad", "");
  auto bogus = run_gantry_split("data bogus");
  expect_error(bogus, 2, "bogus", "unknown subcommand");
  EXPECT_EQ(run_gantry_split("data").exit_code, 2);
  EXPECT_EQ(run_gantry_split("frobnicate").exit_code, 2);
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(DataCli, HelpListsOptions) {
  auto help = run_gantry_split("data convert --help");
  EXPECT_EQ(help.exit_code, 0) << help.err;
  for (const char* option : {"--format", "--out", "--images", "--labels", "--lmdb", "--root", "--shard-size",
                             "--resolution", "--channels", "--limit", "--max-bad", "--workers", "--force"})
    EXPECT_NE(help.out.find(option), std::string::npos) << "help lacks " << option << ":\n" << help.out;
  for (const char* sub : {"inspect", "verify", "bench"}) {
    auto h = run_gantry_split(std::string("data ") + sub + " --help");
    EXPECT_EQ(h.exit_code, 0) << sub << ": " << h.err;
    EXPECT_NE(h.out.find("usage: gantry data"), std::string::npos) << h.out;
  }
  auto top = run_gantry_split("data --help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("convert"), std::string::npos);
}

}  // namespace
}  // namespace gantry::testing
