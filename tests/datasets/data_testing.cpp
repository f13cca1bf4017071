#include "datasets/data_testing.h"

#include <hdf5.h>
#include <lmdb.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/checksum.h"

namespace gantry::testing {

namespace fs = std::filesystem;

namespace {

void put_be32(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v >> 24));
  s.push_back(static_cast<char>(v >> 16));
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v));
}

void check_h5(herr_t rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string("HDF5: ") + what);
}

}  // namespace

std::string idx_images(int64_t n, int rows, int cols, const std::vector<uint8_t>& pixels) {
  std::string s;
  put_be32(s, 0x00000803);
  put_be32(s, static_cast<uint32_t>(n));
  put_be32(s, static_cast<uint32_t>(rows));
  put_be32(s, static_cast<uint32_t>(cols));
  s.append(reinterpret_cast<const char*>(pixels.data()), pixels.size());
  return s;
}

std::string idx_labels(const std::vector<uint8_t>& labels) {
  std::string s;
  put_be32(s, 0x00000801);
  put_be32(s, static_cast<uint32_t>(labels.size()));
  s.append(reinterpret_cast<const char*>(labels.data()), labels.size());
  return s;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  if (!f) throw std::runtime_error("gzopen " + path);
  if (!bytes.empty() && gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size()))
    throw std::runtime_error("gzwrite " + path);
  if (gzclose(f) != Z_OK) throw std::runtime_error("gzclose " + path);
}

std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("gzopen " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  if (n < 0) throw std::runtime_error("gzread " + path);
  return out;
}

void write_lmdb(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& records) {
  fs::create_directories(dir);
  MDB_env* env = nullptr;
  auto check = [](int rc, const char* what) {
    if (rc != MDB_SUCCESS) throw std::runtime_error(std::string("LMDB ") + what + ": " + mdb_strerror(rc));
  };
  check(mdb_env_create(&env), "create");
  check(mdb_env_set_mapsize(env, size_t{64} << 20), "mapsize");
  check(mdb_env_open(env, dir.c_str(), 0, 0664), "open");
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env, nullptr, 0, &txn), "begin");
  MDB_dbi dbi = 0;
  check(mdb_dbi_open(txn, nullptr, 0, &dbi), "dbi");
  for (const auto& [k, v] : records) {
    MDB_val key{k.size(), const_cast<char*>(k.data())}, value{v.size(), const_cast<char*>(v.data())};
    check(mdb_put(txn, dbi, &key, &value, 0), "put");
  }
  check(mdb_txn_commit(txn), "commit");
  mdb_env_close(env);
}

std::string hex_key(uint64_t i) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  uint64_t x = i * 0x9E3779B97F4A7C15ull + 12345;
  for (int k = 0; k < 40; ++k) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    s.push_back(digits[x & 15]);
  }
  return s;
}

data::Image solid(int h, int w, uint8_t r, uint8_t g, uint8_t b) {
  data::Image img{h, w, 3, std::vector<uint8_t>(static_cast<size_t>(h) * w * 3)};
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = r;
    img.pixels[i + 1] = g;
    img.pixels[i + 2] = b;
  }
  return img;
}

std::vector<double> mean_color(const uint8_t* pixels, int64_t n_pixels, int channels) {
  std::vector<double> m(static_cast<size_t>(channels), 0.0);
  for (int64_t i = 0; i < n_pixels; ++i)
    for (int c = 0; c < channels; ++c) m[static_cast<size_t>(c)] += pixels[i * channels + c];
  for (auto& v : m) v /= static_cast<double>(n_pixels);
  return m;
}

void rewrite_shard(const std::string& path, ImagesType type, int64_t n, int64_t h, int64_t w, int64_t c,
                   const void* data, const int64_t* labels_data, Layout layout) {
  fs::remove(path);
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("H5Fcreate " + path);
  hsize_t dims[4] = {static_cast<hsize_t>(n), static_cast<hsize_t>(h), static_cast<hsize_t>(w), static_cast<hsize_t>(c)};
  hid_t space = H5Screate_simple(4, dims, nullptr);
  hid_t file_type = type == ImagesType::kUint8 ? H5T_STD_U8LE : type == ImagesType::kUint16 ? H5T_STD_U16LE : H5T_IEEE_F32LE;
  hid_t mem_type = type == ImagesType::kUint8 ? H5T_NATIVE_UINT8 : type == ImagesType::kUint16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT;
  size_t elem = type == ImagesType::kUint8 ? 1 : type == ImagesType::kUint16 ? 2 : 4;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (layout == Layout::kDeflate) {
    hsize_t chunk[4] = {std::min<hsize_t>(2, dims[0]), dims[1], dims[2], dims[3]};
    check_h5(H5Pset_chunk(dcpl, 4, chunk), "chunk");
    check_h5(H5Pset_deflate(dcpl, 4), "deflate");
  }
  hid_t images = H5Dcreate2(file, "images", file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  std::vector<char> zeros(static_cast<size_t>(n * h * w * c) * elem, 0);
  check_h5(H5Dwrite(images, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data ? data : zeros.data()), "write images");
  H5Pclose(dcpl);
  hsize_t ldims[1] = {static_cast<hsize_t>(n)};
  hid_t lspace = H5Screate_simple(1, ldims, nullptr);
  hid_t labels = H5Dcreate2(file, "labels", H5T_STD_I64LE, lspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<int64_t> lab(static_cast<size_t>(n), 0);
  check_h5(H5Dwrite(labels, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels_data ? labels_data : lab.data()),
           "write labels");
  H5Dclose(labels);
  H5Sclose(lspace);
  H5Dclose(images);
  H5Sclose(space);
  H5Fclose(file);
}

void refresh_manifest(const std::string& dir) {
  std::string path = (fs::path(dir) / "manifest.json").string();
  auto j = nlohmann::json::parse(read_bytes(path));
  for (auto& s : j.at("shards")) {
    std::string file = (fs::path(dir) / s.at("file").get<std::string>()).string();
    uint64_t bytes = 0;
    s["checksum"] = file_checksum(file, &bytes);
    s["bytes"] = bytes;
  }
  write_bytes(path, j.dump(2) + "\n");
}

uint64_t chunk_offset(const std::string& shard_path, int64_t i) {
  hid_t file = H5Fopen(shard_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("H5Fopen " + shard_path);
  hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
  hsize_t coord[4] = {static_cast<hsize_t>(i), 0, 0, 0};
  unsigned mask = 0;
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  herr_t rc = H5Dget_chunk_info_by_coord(images, coord, &mask, &addr, &size);
  H5Dclose(images);
  H5Fclose(file);
  if (rc < 0 || addr == HADDR_UNDEF) throw std::runtime_error("no chunk for image " + std::to_string(i));
  return addr;
}

SplitResult run_gantry_split(const std::string& args) {
  static std::atomic<int> counter{0};
  ScratchDir tmp("stderr");
  std::string err_path = tmp / ("err-" + std::to_string(counter++));
  // run_command merges the subshell's stderr into stdout; gantry's own stderr goes to the file.
  std::string command = "(";  // appended, not "(" + string: GCC 12 -Wrestrict false positive (bug 105329)
  command.append(GANTRY_BIN).append(" ").append(args).append(" 2>").append(err_path).append(")");
  CommandResult r = run_command(command);
  return SplitResult{r.exit_code, r.output, read_bytes(err_path)};
}

std::vector<std::string> entries_starting_with(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0) out.push_back(name);
  }
  return out;
}

}  // namespace gantry::testing
