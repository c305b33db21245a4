// Typed name dispatch, PNG writing, plots, atomic files and TensorBoard event files.
#include "helpers.hpp"

#include <gm/io/export.hpp>
#include <gm/io/file.hpp>
#include <gm/io/plot.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/io/png.hpp>
#include <gm/sampler/grids.hpp>
#include <gm/type_list.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <unistd.h>

TEST_CASE("visit_by_name maps a name to its type and rejects unknown names with the nearest and the valid ones") {
  using Schedules = gm::type_list<gm::Linear, gm::VP, gm::VE>;
  std::string seen;
  gm::visit_by_name<Schedules>("vp", [&]<class S>() { seen = std::string(gm::Interpolant<S>::name); });
  CHECK(seen == "vp");
  int visited = 0;
  gm::for_each_type<Schedules>([&]<class>() { ++visited; });
  CHECK(visited == 3);
  CHECK(gm::names(Schedules{}) == "linear, vp, ve");
  try {
    gm::visit_by_name<Schedules>("vpp", []<class>() {}, "schedule");
    FAIL("expected gm::Error");
  } catch (const gm::Error& e) {
    CHECK(std::string(e.what()) == "gm: unknown schedule 'vpp'; did you mean 'vp'? (expected one of: linear, vp, ve)");
  }
  // Nothing near: no suggestion.
  CHECK_THROWS_WITH_AS(gm::visit_by_name<Schedules>("cosine", []<class>() {}, "schedule"),
                       "gm: unknown schedule 'cosine' (expected one of: linear, vp, ve)", gm::Error);
}

TEST_CASE("write_png writes a valid PNG that keeps every pixel") {
  gm::io::Image img(7, 3);
  img.set(0, 0, {255, 0, 0});
  img.set(6, 2, {0, 0, 255});
  img.set(10, 10, {1, 2, 3});  // outside: ignored
  const auto path = std::filesystem::temp_directory_path() / ("gm_test_" + std::to_string(::getpid()) + ".png");
  gm::io::write_png(path, img);
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  REQUIRE(bytes.size() > 33);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(bytes.substr(12, 4) == "IHDR");
  auto u32 = [&](size_t at) {
    return (uint32_t(uint8_t(bytes[at])) << 24) | (uint32_t(uint8_t(bytes[at + 1])) << 16) |
           (uint32_t(uint8_t(bytes[at + 2])) << 8) | uint32_t(uint8_t(bytes[at + 3]));
  };
  CHECK(u32(16) == 7);
  CHECK(u32(20) == 3);
  // Decompress the image data and compare with the raster (filter byte 0 before each row).
  const size_t idat = bytes.find("IDAT");
  REQUIRE(idat != std::string::npos);
  const uint32_t len = u32(idat - 4);
  std::string raw(3 * (7 * 3 + 1), '\0');
  uLongf raw_len = raw.size();
  REQUIRE(uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len,
                     reinterpret_cast<const Bytef*>(bytes.data() + idat + 4), len) == Z_OK);
  CHECK(raw_len == raw.size());
  CHECK(uint8_t(raw[1]) == 255);
  CHECK(uint8_t(raw[2]) == 0);
  CHECK(uint8_t(raw[2 * 22 + 1 + 6 * 3 + 2]) == 255);  // blue of pixel (6, 2)
  CHECK(bytes.substr(bytes.size() - 8, 4) == "IEND");
  CHECK_THROWS_AS(gm::io::write_png("/nonexistent/dir/x.png", img), gm::Error);
}

TEST_CASE("line_plot draws each series in its own colour inside the axes") {
  gm::io::PlotOptions o;
  o.log_x = o.log_y = true;
  o.title = "test";
  auto img = gm::io::line_plot({{"a", {1, 10, 100}, {1, 0.1, 0.01}}, {"b", {1, 100}, {0.5, -1}}}, o);
  CHECK(img.width == o.width);
  int first = 0, second = 0;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) {
    if (img.rgb[i] == 31 && img.rgb[i + 1] == 119 && img.rgb[i + 2] == 180) ++first;
    if (img.rgb[i] == 255 && img.rgb[i + 1] == 127 && img.rgb[i + 2] == 14) ++second;
  }
  CHECK(first > 200);   // a line across two decades, markers and the legend swatch
  CHECK(second > 49);   // series b has one valid point (y = -1 is off a log axis): marker and swatch
}

TEST_CASE("nice_ticks gives round numbers covering the range, and tick_label prints them plainly") {
  auto lin = gm::io::nice_ticks(3.4, 8.6, false);
  CHECK(lin.at == std::vector<double>{4, 5, 6, 7, 8});
  CHECK(lin.step == 1);
  auto steps = gm::io::nice_ticks(-300, 8300, false);
  CHECK(steps.at == std::vector<double>{0, 2000, 4000, 6000, 8000});
  auto small = gm::io::nice_ticks(0.0012, 0.0031, false);
  CHECK(small.step == doctest::Approx(0.0005));
  auto decades = gm::io::nice_ticks(2e-5, 3, true);
  CHECK(decades.at.size() == 5);  // 1e-4 .. 1
  CHECK(decades.at.front() == doctest::Approx(1e-4));
  auto one25 = gm::io::nice_ticks(3, 60, true);
  CHECK(one25.at == std::vector<double>{5, 10, 20, 50});
  CHECK(gm::io::nice_ticks(3.7, 3.95, true).step > 0);  // too narrow for 1-2-5: linear ticks
  CHECK(gm::io::tick_label(2000, 2000) == "2000");
  CHECK(gm::io::tick_label(0.25, 0.05) == "0.25");
  CHECK(gm::io::tick_label(4.5, 0.5) == "4.5");
  CHECK(gm::io::tick_label(0.001, 0.001) == "0.001");
  CHECK(gm::io::tick_label(2e-5, 1e-5) == "2e-05");
  CHECK(gm::io::tick_label(0, 1) == "0");
}

TEST_CASE("draw_text renders anti-aliased glyphs of the plot font") {
  gm::io::Image img(200, 40);
  const int w = gm::io::draw_text(img, 2, 2, "loss 1000", {0, 0, 0});
  CHECK(w == gm::io::text_width("loss 1000"));
  CHECK(w > 50);
  int dark = 0, grey = 0;
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    dark += img.rgb[i] < 60;
    grey += img.rgb[i] >= 60 && img.rgb[i] < 200;
  }
  CHECK(dark > 60);
  CHECK(grey > 20);  // partial coverage at glyph edges
  CHECK(gm::io::text_height() >= 14);
}

TEST_CASE("write_file_atomic replaces a file whole, leaves no temporary, and names the path on failure") {
  const auto dir = gm::test::fresh_dir("atomic");
  std::filesystem::create_directories(dir);
  gm::io::write_file_atomic(dir / "a.txt", "first");
  gm::io::write_file_atomic(dir / "a.txt", "second");
  CHECK(gm::io::read_file(dir / "a.txt") == "second");
  CHECK(!std::filesystem::exists(dir / "a.txt.tmp"));
  CHECK_THROWS_WITH_AS(gm::io::write_file_atomic(dir / "no" / "b.txt", "x"), doctest::Contains("no/b.txt"), gm::Error);
  gm::io::AppendFile log(dir / "log.csv");
  log.append("1,2\n");
  log.append("3,4\n");
  CHECK(gm::io::read_file(dir / "log.csv") == "1,2\n3,4\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("TensorBoard events: CRC-32C, scalars and images round-trip, truncation, torn and damaged records") {
  CHECK(gm::io::detail::tb::crc32c("123456789") == 0xE3069283u);  // the CRC-32C check value
  const auto dir = gm::test::fresh_dir("tb");
  std::filesystem::create_directories(dir);
  std::filesystem::path file;
  {
    gm::io::EventWriter w(dir);
    file = w.path();
    CHECK(file.filename().string().rfind("events.out.tfevents.", 0) == 0);
    for (int s = 1; s <= 5; ++s) w.scalars(s, {{"loss", 1.0 / s}, {"lr", 1e-3}});
    gm::io::Image img(3, 2);
    img.set(1, 1, {255, 0, 0});
    w.image("samples", img, 5);
  }
  auto f = gm::io::read_events(file);
  REQUIRE(f.events.size() == 7);
  CHECK(!f.torn);
  CHECK(f.events[0].file_version == "brain.Event:2");
  CHECK(f.events[3].step == 3);
  REQUIRE(f.events[3].values.size() == 2);
  CHECK(f.events[3].values[0].tag == "loss");
  CHECK(*f.events[3].values[0].scalar == doctest::Approx(1.0 / 3).epsilon(1e-7));
  CHECK(*f.events[3].values[1].scalar == doctest::Approx(1e-3).epsilon(1e-7));
  CHECK(f.events[6].values[0].tag == "samples");
  CHECK(f.events[6].values[0].image_width == 3);
  CHECK(f.events[6].values[0].image_height == 2);
  CHECK(f.events[6].values[0].image_png == gm::io::encode_png([] {
          gm::io::Image i(3, 2);
          i.set(1, 1, {255, 0, 0});
          return i;
        }()));
  CHECK(f.events[2].wall_time > 1.6e9);

  {  // a killed writer's torn last record is cut when the file is reopened, then steps after 3 are dropped
    std::ofstream(file, std::ios::app | std::ios::binary) << std::string("\x20\x00\x00", 3);
    CHECK(gm::io::read_events(file).torn);
    gm::io::EventWriter w(dir);
    CHECK(w.path() == file);
    CHECK(!gm::io::read_events(file).torn);
    w.truncate_after(3);
    w.scalar("loss", 0.5, 4);
  }
  f = gm::io::read_events(file);
  REQUIRE(f.events.size() == 5);
  CHECK(f.events[3].step == 3);
  CHECK(f.events[4].step == 4);
  CHECK(*f.events[4].values[0].scalar == 0.5f);

  std::string bytes = gm::io::read_file(file);  // one flipped byte: the CRC catches it, naming the offset
  bytes[bytes.size() - 10] ^= 0x40;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  CHECK_THROWS_WITH_AS(gm::io::read_events(file), doctest::Contains("fails its CRC"), gm::Error);
  CHECK(gm::io::read_events(file, true).torn);  // salvaged: the good records before it
  CHECK(gm::io::read_events(file, true).events.size() == 4);
  {
    gm::io::EventWriter w(dir);  // a resumed run cuts the damaged record and goes on
    w.scalar("loss", 0.25, 4);
  }
  CHECK(gm::io::read_events(file).events.size() == 5);
  std::filesystem::remove_all(dir);
}

TEST_CASE("safetensors: tensors and metadata round-trip; malformed headers and data are one-line errors") {
  gm::io::NamedTensors ts{{"w", torch::arange(6, torch::kFloat32).reshape({2, 3})},
                          {"b", torch::tensor({1.5, -2.0}, torch::kFloat64)},
                          {"n", torch::tensor(7, torch::kLong)},
                          {"mask", torch::tensor({true, false})},
                          {"empty", torch::zeros({0, 4})}};
  const auto bytes = gm::io::encode_safetensors(ts, {{"format", "pt"}, {"note", "a \"quoted\"\nline"}});
  std::map<std::string, std::string> meta;
  const auto back = gm::io::parse_safetensors(bytes, "x.safetensors", &meta);
  REQUIRE(back.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    CHECK(back[i].first == ts[i].first);
    CHECK(torch::equal(back[i].second, ts[i].second));
  }
  CHECK(meta["note"] == "a \"quoted\"\nline");
  auto error = [](std::string b) {
    try {
      gm::io::parse_safetensors(b, "bad.safetensors");
    } catch (const gm::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto with_header = [](const std::string& h, const std::string& data) {
    std::string out;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((h.size() >> (8 * i)) & 0xff));
    return out + h + data;
  };
  CHECK(error("abc").find("bad.safetensors: not a usable safetensors file") != std::string::npos);
  CHECK(error(std::string("\xff\xff\xff\xff\x00\x00\x00\x00{}", 10)).find("header length") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "1234567")).find("beyond") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "12345678")).find("does not match") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "1")).find("unknown dtype") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "12")).find("stray bytes") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", "12")).find("appears twice") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", "123")).find("overlap") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", "")).find("lacks") != std::string::npos);
  CHECK(error(with_header("{\"a\":[1]}", "")).find("expected '{'") != std::string::npos);
  CHECK(error(with_header("{} x", "")).find("trailing") != std::string::npos);
  CHECK(error(with_header("{\"a\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]}}", "\x07")).find("neither 0 nor 1") != std::string::npos);
  CHECK_THROWS_WITH_AS(gm::io::read_safetensors("/nonexistent/x.safetensors"), doctest::Contains("no such file"), gm::Error);
}

TEST_CASE("load_weights: an exported network loads back by name; a wrong shape or a missing tensor names the file") {
  auto dir = gm::test::fresh_dir("load_weights");
  std::filesystem::create_directories(dir);
  torch::manual_seed(1);
  gm::MLP a(gm::MLPOptions().dim(2).hidden(8).layers(2));
  torch::manual_seed(2);
  gm::MLP b(gm::MLPOptions().dim(2).hidden(8).layers(2));
  gm::io::write_safetensors(dir / "weights.safetensors", gm::io::named_tensors(*a));
  gm::io::load_weights(*b, dir);  // a run folder: its weights.safetensors
  for (const auto& [name, t] : gm::io::named_tensors(*a)) {
    bool found = false;
    for (const auto& [n2, t2] : gm::io::named_tensors(*b)) found = found || (n2 == name && t2.equal(t));
    CHECK_MESSAGE(found, name);
  }
  gm::MLP wide(gm::MLPOptions().dim(2).hidden(16).layers(2));
  const auto msg = gm::test::error_of([&] { gm::io::load_weights(*wide, dir / "weights.safetensors"); });
  CHECK(gm::test::contains(msg, "weights.safetensors: tensor '"));
  CHECK(gm::test::contains(msg, "this network's has"));
  gm::MLP deep(gm::MLPOptions().dim(2).hidden(8).layers(3));
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::io::load_weights(*deep, dir); }), "for this network"));
  std::filesystem::remove_all(dir);
}
