// Record sources for `gantry data convert`: idx (MNIST-style, gzipped or not), LSUN LMDB, image
// folders, and synthetic images.
#include <lmdb.h>
#include <sys/mman.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "convert/pipeline.h"
#include "core/errors.h"

namespace gantry::data {

namespace fs = std::filesystem;

namespace {

// ---- idx -------------------------------------------------------------------------------------
// Big-endian header: magic 0x0000 08 NDIM (08 = uint8), then NDIM uint32 sizes, then the data.

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    if (!fs::is_regular_file(path)) throw DataError(at(path, "no such file"));
    f_ = gzopen(path.c_str(), "rb");  // reads plain files too
    if (!f_) throw DataError(at(path, "cannot open"));
    gzbuffer(f_, 1 << 20);
  }
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  // Reads exactly n bytes or throws (truncated / corrupt).
  void read(void* dst, size_t n) {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      int chunk = static_cast<int>(std::min<size_t>(n, 1 << 30));
      int r = gzread(f_, p, static_cast<unsigned>(chunk));
      if (r <= 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        throw DataError(at(path_, r == 0 ? "unexpected end of file (truncated?)" : std::string("read error: ") + msg));
      }
      p += r;
      n -= static_cast<size_t>(r);
    }
  }
  uint32_t be32() {
    unsigned char b[4];
    read(b, 4);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

std::vector<uint32_t> read_idx_header(GzFile& f, int want_ndim) {
  uint32_t magic = f.be32();
  int ndim = static_cast<int>(magic & 0xFF);
  if ((magic >> 16) != 0 || ((magic >> 8) & 0xFF) != 0x08 || ndim != want_ndim) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", magic);
    throw DataError(at(f.path(), std::string("not an idx file of uint8 ") + (want_ndim == 3 ? "images" : "labels") +
                                     " (magic " + buf + ", expected 0x0000080" + std::to_string(want_ndim) + ")"));
  }
  std::vector<uint32_t> dims;
  for (int i = 0; i < ndim; ++i) dims.push_back(f.be32());
  return dims;
}

// `classes` (labels; empty: all) keeps only the images with one of those labels, in file order; `limit`
// then counts the kept ones. The labels file is read whole up front (one byte per image).
class IdxSource : public RecordSource {
 public:
  IdxSource(const std::string& images, const std::string& labels, int64_t limit, const std::vector<int64_t>& classes)
      : images_(images) {
    auto dims = read_idx_header(images_, 3);
    count_ = dims[0];
    rows_ = static_cast<int>(dims[1]);
    cols_ = static_cast<int>(dims[2]);
    if (rows_ <= 0 || cols_ <= 0 || count_ <= 0) throw DataError(at(images, "idx header has an empty dimension"));
    if (!labels.empty()) {
      GzFile file(labels);
      auto ldims = read_idx_header(file, 1);
      if (ldims[0] != static_cast<uint32_t>(count_))
        throw DataError(at(labels, std::to_string(ldims[0]) + " labels for " + std::to_string(count_) + " images"));
      labels_.resize(static_cast<size_t>(count_));
      file.read(labels_.data(), labels_.size());
    }
    describe_ = "idx:" + fs::absolute(images).string();
    if (!classes.empty()) {
      if (labels.empty()) throw std::invalid_argument("a class filter needs the labels file");
      std::string list;
      for (int64_t c : classes) {
        if (!list.empty()) list += ',';
        list += std::to_string(c);
      }
      for (int64_t i = 0; i < count_; ++i)
        if (std::find(classes.begin(), classes.end(), labels_[static_cast<size_t>(i)]) != classes.end())
          kept_.push_back(i);
      if (kept_.empty()) throw DataError(at(labels, "no image has label " + list));
      describe_ += " classes " + list;
      count_ = static_cast<int64_t>(kept_.size());
    }
    if (limit > 0) count_ = std::min(count_, limit);
  }
  int64_t total() const override { return count_; }
  bool has_labels() const override { return !labels_.empty(); }
  std::string describe() const override { return describe_; }
  bool next(Record& r) override {
    if (i_ >= count_) return false;
    const int64_t index = kept_.empty() ? i_ : kept_[static_cast<size_t>(i_)];
    r.bytes.resize(static_cast<size_t>(rows_) * cols_);
    for (; read_ <= index; ++read_) images_.read(r.bytes.data(), r.bytes.size());  // skips the images not kept
    r.key = "image " + std::to_string(index);
    if (!labels_.empty()) r.label = labels_[static_cast<size_t>(index)];
    ++i_;
    return true;
  }
  Image decode(const Record& r, int) const override {  // idx images stay single-channel
    return Image{rows_, cols_, 1, std::vector<uint8_t>(r.bytes.begin(), r.bytes.end())};
  }

 private:
  GzFile images_;
  std::vector<uint8_t> labels_;  // one per image of the file; empty: no labels file
  std::vector<int64_t> kept_;    // indices of the images a class filter keeps (empty: no filter)
  int64_t count_ = 0, i_ = 0, read_ = 0;
  int rows_ = 0, cols_ = 0;
  std::string describe_;
};

// ---- LMDB (LSUN) -----------------------------------------------------------------------------
// One database per category/split; key: image id, value: encoded WebP or JPEG. Iterated in key order.

class LmdbSource : public RecordSource {
 public:
  LmdbSource(const std::string& path, int64_t limit) : path_(path) {
    if (!fs::exists(path)) throw DataError(at(path, "no such LMDB database"));
    unsigned flags = MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD;
    if (!fs::is_directory(path)) flags |= MDB_NOSUBDIR;
    check(mdb_env_create(&env_), "create environment");
    check(mdb_env_open(env_, path.c_str(), flags, 0444), "open (not an LMDB database?)");
    check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn_), "begin read transaction");
    check(mdb_dbi_open(txn_, nullptr, 0, &dbi_), "open main database");
    MDB_stat st{};
    check(mdb_stat(txn_, dbi_, &st), "stat");
    count_ = static_cast<int64_t>(st.ms_entries);
    if (limit > 0) count_ = std::min(count_, limit);
    check(mdb_cursor_open(txn_, dbi_, &cursor_), "open cursor");
    MDB_envinfo info{};
    mdb_env_info(env_, &info);
    map_ = info.me_mapaddr;
    map_size_ = info.me_mapsize;
    describe_ = "lsun-lmdb:" + fs::absolute(path).string();
  }
  ~LmdbSource() override {
    if (cursor_) mdb_cursor_close(cursor_);
    if (txn_) mdb_txn_abort(txn_);
    if (env_) mdb_env_close(env_);
  }
  int64_t total() const override { return count_; }
  std::string describe() const override { return describe_; }
  bool next(Record& r) override {
    if (i_ >= count_) return false;
    MDB_val key{}, value{};
    int rc = mdb_cursor_get(cursor_, &key, &value, i_ == 0 ? MDB_FIRST : MDB_NEXT);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, "read record " + std::to_string(i_));
    r.key = std::string(static_cast<const char*>(key.mv_data), key.mv_size);
    r.bytes.assign(static_cast<const char*>(value.mv_data), value.mv_size);
    ++i_;
    // The map's pages we have copied out need not stay resident: keep RSS flat on a 40 GB database.
    if (map_ && (i_ % 4096) == 0) madvise(map_, map_size_, MADV_DONTNEED);
    return true;
  }
  Image decode(const Record& r, int channels) const override {
    return decode_image(reinterpret_cast<const uint8_t*>(r.bytes.data()), r.bytes.size(), channels);
  }

 private:
  void check(int rc, const std::string& what) const {
    if (rc != MDB_SUCCESS) throw DataError(at(path_, "LMDB " + what + ": " + mdb_strerror(rc)));
  }
  std::string path_, describe_;
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_cursor* cursor_ = nullptr;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  int64_t count_ = 0, i_ = 0;
};

// ---- image folder ----------------------------------------------------------------------------

class FolderSource : public RecordSource {
 public:
  FolderSource(const std::string& root, int64_t limit) : root_(root) {
    if (!fs::is_directory(root)) throw DataError(at(root, "no such directory"));
    for (const auto& e : fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp")
        files_.push_back(fs::relative(e.path(), root).string());
    }
    std::sort(files_.begin(), files_.end());
    if (files_.empty()) throw DataError(at(root, "no .png, .jpg, .jpeg or .webp files"));
    if (limit > 0 && static_cast<int64_t>(files_.size()) > limit) files_.resize(static_cast<size_t>(limit));
    describe_ = "folder:" + fs::absolute(root).string();
  }
  int64_t total() const override { return static_cast<int64_t>(files_.size()); }
  std::string describe() const override { return describe_; }
  bool next(Record& r) override {
    if (i_ >= files_.size()) return false;
    r.key = files_[i_++];
    r.bytes.clear();  // read in decode(), on the worker threads
    return true;
  }
  Image decode(const Record& r, int channels) const override {
    std::string path = (fs::path(root_) / r.key).string();
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot open");
    std::string bytes;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
    return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), channels);
  }

 private:
  std::string root_, describe_;
  std::vector<std::string> files_;
  size_t i_ = 0;
};

// ---- synthetic -------------------------------------------------------------------------------

class SyntheticSource : public RecordSource {
 public:
  SyntheticSource(int64_t count, int resolution, int channels, uint64_t seed)
      : count_(count), res_(resolution), channels_(channels), seed_(seed) {
    if (count <= 0 || resolution <= 0 || (channels != 1 && channels != 3))
      throw UsageError("synthetic: --count, --resolution must be positive and --channels 1 or 3");
  }
  int64_t total() const override { return count_; }
  bool has_labels() const override { return true; }
  std::string describe() const override {
    return "synthetic:" + std::to_string(count_) + "x" + std::to_string(res_) + "x" + std::to_string(res_) + "x" +
           std::to_string(channels_) + ",seed=" + std::to_string(seed_);
  }
  bool next(Record& r) override {
    if (i_ >= count_) return false;
    r.key = "image " + std::to_string(i_);
    r.label = i_ % 10;
    r.bytes.resize(static_cast<size_t>(res_) * res_ * channels_);
    uint64_t s = seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i_) + 1;
    for (size_t k = 0; k < r.bytes.size(); k += 8) {  // xorshift64*: fast, deterministic
      s ^= s >> 12;
      s ^= s << 25;
      s ^= s >> 27;
      uint64_t v = s * 0x2545F4914F6CDD1Dull;
      std::memcpy(&r.bytes[k], &v, std::min<size_t>(8, r.bytes.size() - k));
    }
    ++i_;
    return true;
  }
  Image decode(const Record& r, int) const override {
    return Image{res_, res_, channels_, std::vector<uint8_t>(r.bytes.begin(), r.bytes.end())};
  }

 private:
  int64_t count_, i_ = 0;
  int res_, channels_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<RecordSource> make_idx_source(const std::string& images, const std::string& labels, int64_t limit,
                                              const std::vector<int64_t>& classes) {
  return std::make_unique<IdxSource>(images, labels, limit, classes);
}
std::unique_ptr<RecordSource> make_lmdb_source(const std::string& dir, int64_t limit) {
  return std::make_unique<LmdbSource>(dir, limit);
}
std::unique_ptr<RecordSource> make_folder_source(const std::string& root, int64_t limit) {
  return std::make_unique<FolderSource>(root, limit);
}
std::unique_ptr<RecordSource> make_synthetic_source(int64_t count, int resolution, int channels, uint64_t seed) {
  return std::make_unique<SyntheticSource>(count, resolution, channels, seed);
}

}  // namespace gantry::data
