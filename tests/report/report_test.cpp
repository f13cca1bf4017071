// gantry report: the page of a synthetic run (20000 logged steps, gaps, evaluations, a hostile config value,
// a torn last line) and of a tiny real `gantry train` run, each opened in headless Chromium (Debian's
// `chromium`, installed by launch/setup.sh; missing, the test fails): the screenshot is not blank and the
// page's curve charts (<svg class="curve" data-series=KEY>, counted in the DOM Chromium built) are exactly
// the series of metrics.jsonl, computed here by the rule of framework/report/run_contents.h. Also: the
// downsampling keeps extremes and gaps; bad input is one line and exit 2, 3 or 5; absent parts say so.
#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "report/html_report.h"
#include "report/image.h"
#include "report/svg_chart.h"
#include "support/testing.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
const std::string kGantry = GANTRY_BIN;

// The series of a metrics.jsonl, by the documented rule: keys other than step, epoch and time whose value is
// a JSON number in at least one record (a JSON object with a numeric step). Lines that do not parse are skipped.
std::set<std::string> expected_series(const std::string& metrics_path) {
  std::set<std::string> keys;
  std::ifstream in(metrics_path);
  for (std::string line; std::getline(in, line);) {
    const auto r = nlohmann::json::parse(line, nullptr, false);
    if (!r.is_object() || !r.contains("step") || !r["step"].is_number()) continue;
    for (const auto& [k, v] : r.items())
      if (k != "step" && k != "epoch" && k != "time" && v.is_number()) keys.insert(k);
  }
  return keys;
}

std::string unescape(std::string s) {
  for (auto [from, to] : {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}})
    for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += std::string(to).size())
      s.replace(p, std::string(from).size(), to);
  return s;
}

// data-series of every <svg class="curve"> element in a DOM Chromium serialised (a multiset, as a vector).
std::vector<std::string> curves_in(const std::string& dom) {
  std::vector<std::string> out;
  static const std::regex kSvg(R"re(<svg\b[^>]*>)re");
  static const std::regex kClass(R"re(\sclass="curve")re"), kSeries(R"re(\sdata-series="([^"]*)")re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), kSvg); it != std::sregex_iterator(); ++it) {
    const std::string tag = it->str();
    std::smatch m;
    if (std::regex_search(tag, kClass) && std::regex_search(tag, m, kSeries)) out.push_back(unescape(m[1].str()));
  }
  return out;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = 0; (p = text.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

struct Rendered {
  std::string dom;
  size_t pixels = 0, non_white = 0, colours = 0;
};

// Opens `html` in headless Chromium: the DOM it built, and a 1280x2400 screenshot's statistics.
Rendered render_in_chromium(const std::string& html, const std::string& work) {
  Rendered r;
  const auto which = run_command("command -v chromium");
  if (which.exit_code != 0) {
    ADD_FAILURE() << "chromium not found: install Debian's chromium package (bash launch/setup.sh does)";
    return r;
  }
  const std::string chrome =
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars "
      "--user-data-dir=" +
      work + "/chrome ";
  const std::string shot = work + "/shot.png";
  auto s = run_command(chrome + "--window-size=1280,2400 --screenshot=" + shot + " file://" + html);
  EXPECT_EQ(s.exit_code, 0) << s.output;
  auto d = run_command(chrome + "--dump-dom file://" + html + " 2>/dev/null");
  EXPECT_EQ(d.exit_code, 0) << d.output;
  r.dom = d.output;
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, shot.c_str())) {
    ADD_FAILURE() << shot << ": not a PNG Chromium wrote: " << image.message << "\n" << s.output;
    return r;
  }
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(image));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, px.data(), 0, nullptr)) << image.message;
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 2 < px.size(); i += 3) {
    const uint32_t c = uint32_t{px[i]} << 16 | uint32_t{px[i + 1]} << 8 | px[i + 2];
    colours.insert(c);
    r.non_white += c != 0xffffff;
  }
  r.pixels = px.size() / 3;
  r.colours = colours.size();
  return r;
}

void expect_not_blank(const Rendered& r) {
  EXPECT_EQ(r.pixels, 1280u * 2400u);
  EXPECT_GT(r.non_white, r.pixels / 50) << "screenshot nearly all white";
  EXPECT_GT(r.colours, 50u) << "screenshot of a handful of colours";
}

// A small gray PNG whose pixels depend on `seed`.
std::string png_bytes(int seed) {
  std::vector<uint8_t> px(40 * 40);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 7 + seed * 31) % 256);
  return encode_png(px.data(), 40, 40, 1);
}

// A run directory as `gantry train` leaves one, written here: 20000 logged steps with a gap every 1000
// in loss_g, strings and booleans beside numbers, evaluations, a config value that is HTML, a torn last line.
void write_synthetic_run(const std::string& dir) {
  fs::create_directories(dir + "/samples");
  fs::create_directories(dir + "/eval");
  testing::write_bytes(dir + "/config.ini",
                       "[run]\nrecipe = dcgan\nseed = 1\nnote = <script>alert(\"x\")</script> & 'y'\n\n"
                       "[train]\nsteps = 30000\nlog_every = 1\n");
  std::ofstream m(dir + "/metrics.jsonl");
  for (int step = 1; step <= 20000; ++step) {
    nlohmann::json r = {{"step", step},
                        {"epoch", step / 1000},
                        {"time", step * 0.01},
                        {"images_per_s", 1000 + step % 17},
                        {"lr", 2e-4},
                        {"loss_d", 1.0 / std::sqrt(step)},
                        {"loss_g", step % 1000 == 0 ? nlohmann::json(nullptr) : nlohmann::json(std::sin(step * 1e-3))},
                        {"always_null", nullptr},
                        {"tag", "text"},
                        {"flag", true}};
    if (step == 7777) r["<b>odd key</b>"] = 3.5;
    m << r.dump() << "\n";
    if (step % 5000 == 0)
      m << nlohmann::json{{"step", step},
                          {"time", step * 0.01},
                          {"eval_loss", 2.0 - step * 1e-4},
                          {"fid", 100.0 / step},
                          {"features", "classifier x.pt crc32:0"}}
               .dump()
        << "\n";
  }
  m << "{\"step\": 20001, \"epoch\": 20, \"loss_d\": 0.";  // the run is still writing
  m.close();
  for (int step : {5000, 10000, 15000, 20000}) {
    char name[64];
    std::snprintf(name, sizeof name, "step-%08d.png", step);
    testing::write_bytes(dir + "/samples/" + name, png_bytes(step));
    if (step >= 15000) testing::write_bytes(dir + "/samples/recon-" + name, png_bytes(step + 1));
  }
  for (int step : {10000, 20000}) {
    char name[64];
    std::snprintf(name, sizeof name, "step-%08d", step);
    fs::create_directories(dir + "/checkpoints/" + name);
    testing::write_bytes(
        dir + "/checkpoints/" + name + "/manifest.json",
        nlohmann::json{{"step", step}, {"epoch", step / 1000}, {"world_size", 4}, {"recipe", "dcgan"}}.dump());
    testing::write_bytes(dir + "/checkpoints/" + name + "/generator.pt", std::string(1000, 'x'));
  }
  testing::write_bytes(dir + "/checkpoints/LATEST", "step-00020000\n");
  testing::write_bytes(dir + "/eval/step-00020000.json",
                       nlohmann::json{{"checkpoint", "runs/x/checkpoints/step-00020000"},
                                      {"step", 20000},
                                      {"recipe", "dcgan"},
                                      {"world_size", 4},
                                      {"held_out", "data/t10k"},
                                      {"features", "classifier <i>net</i>"},
                                      {"values", {{"fid", 12.5}, {"kid", 1.25}}}}
                           .dump(2));
}

TEST(ReportPage, SyntheticRunInChromiumHasOneCurvePerSeriesAndEscapesTheRunsText) {
  testing::ScratchDir d("report-synthetic");
  const std::string run = d / "run";
  write_synthetic_run(run);
  auto r = run_command(kGantry + " report " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = testing::read_bytes(run + "/report.html");
  // Self-contained and small: no scripts, style sheets or images by URL; 20000 steps downsampled.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(count_of(html, "src=\""), count_of(html, "src=\"data:image/png;base64,"));
  EXPECT_EQ(count_of(html, "http"), count_of(html, "xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_LT(html.size(), 300u * 1024) << "curves not downsampled?";

  const std::set<std::string> expected = expected_series(run + "/metrics.jsonl");
  // images_per_s, lr, loss_d, loss_g, "<b>odd key</b>", eval_loss, fid; not always_null, tag, flag, features.
  ASSERT_EQ(expected.size(), 7u);
  const Rendered page = render_in_chromium(run + "/report.html", d.path());
  const std::vector<std::string> curves = curves_in(page.dom);
  EXPECT_EQ(curves.size(), expected.size()) << page.dom.substr(0, 2000);
  EXPECT_EQ(std::set<std::string>(curves.begin(), curves.end()), expected);
  expect_not_blank(page);
  // The hostile value is text, not an element; the newest 3 sample grids and both reconstructions are shown.
  EXPECT_EQ(page.dom.find("<script"), std::string::npos);
  EXPECT_NE(page.dom.find("&lt;script&gt;alert("), std::string::npos);
  EXPECT_NE(page.dom.find("&lt;i&gt;net&lt;/i&gt;"), std::string::npos);
  EXPECT_EQ(count_of(page.dom, "<img "), 5u);
  EXPECT_EQ(count_of(page.dom, "LATEST"), 1u);
  EXPECT_NE(page.dom.find("the last line is incomplete"), std::string::npos);
  EXPECT_NE(page.dom.find("4 (checkpoint step-00020000)"), std::string::npos) << "world size from the manifest";
}

TEST(ReportPage, TinyTrainingRunInChromium) {
  testing::ScratchDir d("report-train");
  for (auto [split, limit] : {std::pair{"train", 256}, std::pair{"t10k", 128}}) {
    auto r = testing::convert_fashion_mnist(split, limit, d / split);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string run = d / "vae";
  auto r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR +
                       "/experiments/vae_fashion_mnist.ini --train.threads 1 --data.path " + (d / "train") +
                       " --data.eval_path " + (d / "t10k") + " --run-dir " + run +
                       " --train.steps 24 --train.batch_size 32 --train.log_every 2 --train.sample_every 8"
                       " --train.eval_every 12 --train.checkpoint_every 12 --vae.hidden 64 --vae.latent 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kGantry + " report " + run + " --out " + (d / "vae.html"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::set<std::string> expected = expected_series(run + "/metrics.jsonl");
  ASSERT_GE(expected.size(), 5u);  // images_per_s, lr, the VAE's losses, eval_*
  const Rendered page = render_in_chromium(d / "vae.html", d.path());
  const std::vector<std::string> curves = curves_in(page.dom);
  EXPECT_EQ(curves.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(curves.begin(), curves.end()), expected);
  expect_not_blank(page);
  EXPECT_GE(count_of(page.dom, "<img "), 2u) << "samples and reconstructions";
  EXPECT_EQ(count_of(page.dom, "LATEST"), 1u);
  EXPECT_NE(page.dom.find("step-00000024"), std::string::npos);
}

TEST(ReportPage, AbsentOptionalPartsSaySo) {
  testing::ScratchDir d("report-empty");
  testing::write_bytes(d / "config.ini", "[run]\nrecipe = vae\n");
  testing::write_bytes(d / "metrics.jsonl", "");
  auto r = run_command(kGantry + " report " + d.path() + " --out " + (d / "page.html"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = testing::read_bytes(d / "page.html");
  for (const char* note : {"no numeric values yet", "No sample grids", "No evaluations", "No checkpoints"})
    EXPECT_NE(html.find(note), std::string::npos) << note;
  EXPECT_EQ(count_of(html, "class=\"curve\""), 0u);
}

TEST(ReportCli, BadInputIsOneLineAndAnExitCode) {
  testing::ScratchDir d("report-errors");
  auto expect = [](const std::string& args, int code, const std::string& text) {
    auto r = run_command(kGantry + " report " + args);
    EXPECT_EQ(r.exit_code, code) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(text), std::string::npos) << args << "\n" << r.output;
    if (code != 0) {
      EXPECT_EQ(count_of(r.output, "\n"), 1u) << r.output;
    }
  };
  expect("--help", 0, "usage: gantry report RUN_DIR");
  expect("", 2, "RUN_DIR: required");
  expect(d.path() + " --colour red", 2, "--colour: unknown option");
  expect(d / "nope", 3, d / "nope");
  expect(d.path(), 3, d / "config.ini");
  testing::write_bytes(d / "config.ini", "[run]\nrecipe = vae\n");
  expect(d.path(), 3, d / "metrics.jsonl");
  testing::write_bytes(d / "metrics.jsonl", "{\"step\": 1, \"loss\": 1}\ngarbage\n{\"step\": 2, \"loss\": 1}\n");
  expect(d.path(), 3, d / "metrics.jsonl:2");
  testing::write_bytes(d / "metrics.jsonl", "{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"lo");  // torn: fine
  expect(d.path() + " --out " + (d / "ok.html"), 0, "1 curves");
  testing::write_bytes(d / "config.ini", "[run]\nrecipe vae\n");
  expect(d.path(), 3, d / "config.ini:2");
  testing::write_bytes(d / "config.ini", "[run]\nrecipe = vae\n");
  expect(d.path() + " --out " + (d / "missing/page.html"), 5, d / "missing/page.html");
  EXPECT_FALSE(fs::exists(d / "report.html")) << "no page from failed runs";
}

TEST(ReportChart, DownsamplingKeepsExtremesAndGapsAndBoundsThePoints) {
  std::vector<double> steps;
  std::vector<float> values;
  for (int i = 0; i < 100000; ++i) {
    steps.push_back(i);
    values.push_back(i == 31337 ? 50.0f : i == 70000 ? std::numeric_limits<float>::quiet_NaN() : std::sin(i * 1e-3f));
  }
  values[99] = -40.0f;
  const auto points = report::downsample(steps, values, 200);
  EXPECT_LE(points.size(), 2u * 200 + 1);
  float lo = 1e9f, hi = -1e9f;
  size_t gaps = 0;
  for (const auto& p : points) {
    if (std::isnan(p.y)) {
      ++gaps;
      continue;
    }
    lo = std::min(lo, static_cast<float>(p.y)), hi = std::max(hi, static_cast<float>(p.y));
  }
  EXPECT_EQ(lo, -40.0f);
  EXPECT_EQ(hi, 50.0f);
  EXPECT_EQ(gaps, 1u);
  // Short series come back whole, non-finite values as gaps.
  const auto whole = report::downsample({1, 2, 3}, {1.0f, std::numeric_limits<float>::infinity(), 3.0f}, 200);
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_TRUE(std::isnan(whole[1].y));
  const auto ticks = report::nice_ticks(0.13, 0.97, 5);
  EXPECT_NEAR(ticks.front(), 0.2, 1e-12);
  EXPECT_NEAR(ticks.back(), 0.8, 1e-12);
}

TEST(ReportChart, EscapingAndBase64) {
  EXPECT_EQ(report::html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(report::base64(""), "");
  EXPECT_EQ(report::base64("f"), "Zg==");
  EXPECT_EQ(report::base64("fo"), "Zm8=");
  EXPECT_EQ(report::base64("foo"), "Zm9v");
  EXPECT_EQ(report::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(report::base64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

}  // namespace
}  // namespace gantry
