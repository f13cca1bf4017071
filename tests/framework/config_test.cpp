#include <gtest/gtest.h>

#include "config/config.h"
#include "core/errors.h"
#include "support/testing.h"

namespace gantry {
namespace {

Schema test_schema() {
  Schema s;
  s.add_int("train.steps", 100, "steps", 1)
      .add_real("train.lr", 1e-3, "learning rate", 0)
      .add_bool("data.flip", false, "flip")
      .add_string("dist.backend", "auto", "backend", {"auto", "mpi", "nccl"})
      .add_string("data.path", "data/fashion-mnist", "dataset");
  return s;
}

TEST(Config, DefaultsFileAndCommandLineOverride) {
  testing::ScratchDir dir;
  testing::write_bytes(dir / "a.ini", "# comment\n[train]\nsteps = 50\nlr = 2e-4\n[data]\nflip = yes\n");
  Config c = load_config(test_schema(), dir / "a.ini", {{"train.steps", "7"}});
  EXPECT_EQ(c.int64("train.steps"), 7);  // command line wins
  EXPECT_DOUBLE_EQ(c.real("train.lr"), 2e-4);
  EXPECT_TRUE(c.flag("data.flip"));
  EXPECT_EQ(c.str("dist.backend"), "auto");
  EXPECT_NE(c.to_ini().find("[train]\nlr = 0.0002\nsteps = 7\n"), std::string::npos) << c.to_ini();
}

TEST(Config, SavedIniLoadsBackToTheSameValues) {
  testing::ScratchDir dir;
  Config c = load_config(test_schema(), "", {{"train.lr", "0.5"}, {"dist.backend", "mpi"}});
  testing::write_bytes(dir / "saved.ini", c.to_ini());
  Config d = load_config(test_schema(), dir / "saved.ini", {});
  EXPECT_EQ(c.values(), d.values());
}

void expect_usage_error(const std::function<void()>& fn, const std::string& fragment) {
  try {
    fn();
    FAIL() << "expected a UsageError containing '" << fragment << "'";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
}

TEST(Config, UnknownKeysBadValuesAndMissingFilesAreUsageErrors) {
  testing::ScratchDir dir;
  testing::write_bytes(dir / "unknown.ini", "[train]\nstepz = 5\n");
  testing::write_bytes(dir / "bad.ini", "[train]\nsteps = many\n");
  auto s = test_schema();
  expect_usage_error([&] { load_config(s, dir / "unknown.ini", {}); }, "unknown key 'train.stepz'");
  expect_usage_error([&] { load_config(s, dir / "bad.ini", {}); }, "train.steps: expected an integer, got 'many'");
  expect_usage_error([&] { load_config(s, dir / "missing.ini", {}); }, "missing.ini: cannot open");
  expect_usage_error([&] { load_config(s, "", {{"train.steps", "0"}}); }, "train.steps: must be between 1");
  expect_usage_error([&] { load_config(s, "", {{"dist.backend", "gloo"}}); }, "expected one of auto, mpi, nccl");
  expect_usage_error([&] { load_config(s, "", {{"train.lr", "nan"}}); }, "train.lr: expected a number");
  expect_usage_error([&] { load_config(s, "", {{"data.flip", "maybe"}}); }, "data.flip: expected true or false");
  expect_usage_error([&] { load_config(s, "", {{"nope.key", "1"}}); }, "--nope.key: unknown option");
}

}  // namespace
}  // namespace gantry
