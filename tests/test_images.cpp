// Images: the readers (IDX, CIFAR-10, image folders) and their malformed files, ImageData's batches, the
// encoders, UNet and DiT, label dropout, classifier-free guidance through the trainer.

#include "helpers.hpp"

#include <gm/data/images.hpp>
#include <gm/io/grid.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/edm2_unet.hpp>
#include <gm/nn/jvp.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/nn/unet.hpp>
#include <gm/process/all.hpp>
#include <gm/sampler/all.hpp>
#include <gm/trainer.hpp>

#include <stb/stb_image_write.h>
#include <zlib.h>

#include <array>
#include <barrier>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

using gm::test::contains;
using gm::test::error_of;
using gm::test::max_abs;

namespace {

/// An IDX file's bytes: magic, dims, data.
std::string idx(const std::vector<uint32_t>& dims, const std::string& data, uint8_t type = 0x08) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (auto d : dims) {
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 0xff);
  }
  return s + data;
}

std::string gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void write(const std::filesystem::path& p, const std::string& bytes) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

/// n images of h x w, image i filled with value i, labels i % 3, in an MNIST-style folder.
std::filesystem::path mnist_folder(const std::string& name, int n, int h, int w, bool gz) {
  auto dir = gm::test::fresh_dir(name);
  std::string px, lab;
  for (int i = 0; i < n; ++i) {
    px += std::string(static_cast<size_t>(h * w), static_cast<char>(i));
    lab += static_cast<char>(i % 3);
  }
  const std::string ext = gz ? ".gz" : "";
  auto im = idx({uint32_t(n), uint32_t(h), uint32_t(w)}, px), lb = idx({uint32_t(n)}, lab);
  write(dir / ("train-images-idx3-ubyte" + ext), gz ? gzip(im) : im);
  write(dir / ("train-labels-idx1-ubyte" + ext), gz ? gzip(lb) : lb);
  return dir;
}

gm::Config image_config(const std::string& name, const std::filesystem::path& root) {
  gm::Config cfg("test");
  cfg.add<int64_t>("seed", 3, "seed");
  gm::data::ImageData::add_keys(cfg, name, root.string());
  return cfg;
}

}  // namespace

TEST_CASE("IDX: plain and gzip files read into uint8 images and labels") {
  for (bool gz : {false, true}) {
    auto dir = mnist_folder(gz ? "idx_gz" : "idx", 7, 4, 5, gz);
    auto s = gm::data::read_mnist(dir, "train");
    CHECK((s.images.sizes() == torch::IntArrayRef({7, 1, 4, 5})));
    CHECK((s.images.scalar_type() == torch::kUInt8));
    CHECK((s.labels.scalar_type() == torch::kInt64));
    CHECK(s.num_classes == 3);
    CHECK(s.images[5].min().item<int>() == 5);
    CHECK(s.labels[5].item<int64_t>() == 2);
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("IDX: every malformed file is a one-line error naming the file") {
  const std::string good = idx({2, 2, 2}, std::string(8, '\1'));
  struct Case {
    std::string bytes, expect;
  } cases[] = {
      {"", "not an IDX file"},
      {"\1\0\x08\3" + good.substr(4), "bad magic"},
      {idx({2, 2, 2}, std::string(8, '\1'), 0x0D), "not unsigned bytes"},
      {std::string{'\0', '\0', '\x08', '\0'}, "0 dimensions"},
      {good.substr(0, 10), "truncated IDX header"},
      {good.substr(0, good.size() - 1), "(truncated)"},
      {good + "x", "but the file has 9"},
      {idx({0x7fffffff, 2}, ""), "too large"},
      {gzip(good).substr(0, 20), "truncated"},
      {"\x1f\x8b garbage that is not deflate", "corrupt gzip"},
  };
  for (const auto& c : cases) {
    INFO(c.expect);
    const auto msg = error_of([&] { gm::data::parse_idx(gm::data::detail::maybe_gunzip(c.bytes, "f.idx"), "f.idx"); });
    CHECK(contains(msg, "f.idx"));
    CHECK(contains(msg, c.expect));
    CHECK(msg.find('\n') == std::string::npos);
  }
  // Labels that do not match the images, and a missing file.
  auto dir = mnist_folder("idx_bad", 3, 2, 2, false);
  write(dir / "train-labels-idx1-ubyte", idx({2}, "\1\2"));
  CHECK(contains(error_of([&] { gm::data::read_mnist(dir, "train"); }), "2 labels for 3 images"));
  CHECK(contains(error_of([&] { gm::data::read_mnist(dir, "test"); }), "t10k-images-idx3-ubyte.gz: no such file"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("Fashion-MNIST from Debian's dataset-fashion-mnist") {
  const std::filesystem::path root = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(root / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("dataset-fashion-mnist is not installed (scripts/setup.sh installs it); skipped");
    return;
  }
  auto s = gm::data::read_mnist(root, "test");
  CHECK((s.images.sizes() == torch::IntArrayRef({10000, 1, 28, 28})));
  CHECK(s.num_classes == 10);
  CHECK(torch::bincount(s.labels).eq(1000).all().item<bool>());  // 1000 test images per class
}

TEST_CASE("CIFAR-10 binary batches: layout, splits and malformed files") {
  auto dir = gm::test::fresh_dir("cifar");
  // Record i: label i % 10, R plane = i, G plane = 100 + i, B plane = 200; one record per training file.
  auto record = [](int i) {
    std::string r(1, static_cast<char>(i % 10));
    r += std::string(1024, static_cast<char>(i)) + std::string(1024, static_cast<char>(100 + i)) +
         std::string(1024, static_cast<char>(200));
    return r;
  };
  for (int b = 1; b <= 5; ++b) write(dir / ("data_batch_" + std::to_string(b) + ".bin"), record(b) + record(b + 10));
  write(dir / "test_batch.bin", record(7));
  auto s = gm::data::read_cifar10(dir, "train");
  CHECK((s.images.sizes() == torch::IntArrayRef({10, 3, 32, 32})));
  CHECK(s.labels[1].item<int64_t>() == 1);  // record 11
  CHECK(s.images[1][0][5][5].item<int>() == 11);
  CHECK(s.images[1][1][31][0].item<int>() == 111);
  CHECK(s.images[1][2][0][31].item<int>() == 200);
  CHECK(gm::data::read_cifar10(dir, "test").size() == 1);
  CHECK(s.class_names.size() == 10);

  write(dir / "data_batch_3.bin", record(1).substr(0, 3000));
  CHECK(contains(error_of([&] { gm::data::read_cifar10(dir, "train"); }), "data_batch_3.bin: 3000 bytes is not a whole"));
  auto bad = record(1);
  bad[0] = 12;
  write(dir / "data_batch_3.bin", bad);
  CHECK(contains(error_of([&] { gm::data::read_cifar10(dir, "train"); }), "data_batch_3.bin: record 0 has label 12"));
  std::filesystem::remove(dir / "data_batch_3.bin");
  CHECK(contains(error_of([&] { gm::data::read_cifar10(dir, "train"); }), "data_batch_3.bin: no such file"));
  write(dir / "test_batch.bin", "");
  CHECK(contains(error_of([&] { gm::data::read_cifar10(dir, "test"); }), "empty CIFAR-10 batch"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("image folders: classes from subfolders, PNG, JPEG and BMP resized and centre-cropped") {
  auto dir = gm::test::fresh_dir("folder");
  std::filesystem::create_directories(dir / "cats");
  std::filesystem::create_directories(dir / "dogs");
  // A 40 x 20 PNG: left half red, right half blue, with a green column band in the middle 10 pixels.
  std::vector<uint8_t> px(40 * 20 * 3);
  for (int y = 0; y < 20; ++y) {
    for (int x = 0; x < 40; ++x) {
      uint8_t* p = &px[(y * 40 + x) * 3];
      if (x >= 15 && x < 25) p[1] = 255;
      else if (x < 20) p[0] = 255;
      else p[2] = 255;
    }
  }
  stbi_write_png((dir / "cats" / "a.png").c_str(), 40, 20, 3, px.data(), 40 * 3);
  std::vector<uint8_t> grey(8 * 8, 77);
  stbi_write_bmp((dir / "dogs" / "b.BMP").c_str(), 8, 8, 1, grey.data());
  stbi_write_jpg((dir / "dogs" / "c.jpg").c_str(), 8, 8, 1, grey.data(), 95);
  write(dir / "dogs" / "notes.txt", "not an image");
  auto s = gm::data::read_image_folder(dir, 10, 3);
  CHECK((s.images.sizes() == torch::IntArrayRef({3, 3, 10, 10})));
  CHECK(s.num_classes == 2);
  CHECK((s.class_names == std::vector<std::string>{"cats", "dogs"}));
  CHECK(s.labels.equal(torch::tensor({0, 1, 1}, torch::kInt64)));
  // Resized to 20 x 10 then the centre 10 x 10 cropped: the green band fills the middle of the crop.
  CHECK(s.images[0][1][5][5].item<int>() > 200);
  CHECK(s.images[0][0][5][5].item<int>() < 50);
  CHECK(std::abs(s.images[1].to(torch::kFloat32).mean().item<double>() - 77) < 1);  // grey into RGB
  CHECK(std::abs(s.images[2].to(torch::kFloat32).mean().item<double>() - 77) < 3);  // JPEG, lossy
  CHECK(gm::data::read_image_folder(dir, 10, 1).images.size(1) == 1);

  write(dir / "dogs" / "broken.png", "\x89PNG\r\n\x1a\n not really");
  const auto msg = error_of([&] { gm::data::read_image_folder(dir, 10, 3); });
  CHECK(contains(msg, "broken.png: cannot decode image"));
  CHECK(msg.find('\n') == std::string::npos);
  CHECK(contains(error_of([&] { gm::data::read_image_folder(dir / "nope", 10, 3); }), "nope: no such folder"));
  auto empty = gm::test::fresh_dir("folder_empty");
  std::filesystem::create_directories(empty / "only");
  CHECK(contains(error_of([&] { gm::data::read_image_folder(empty, 10, 3); }), "no PNG, JPEG or BMP images"));
  std::filesystem::remove_all(empty);
  std::filesystem::remove_all(dir);
}

TEST_CASE("ImageData: epoch permutations from (seed, epoch), whatever the order batches are asked in") {
  auto dir = mnist_folder("imagedata", 10, 2, 2, false);
  auto cfg = image_config("mnist", dir);
  auto data = gm::data::ImageData::from_config(cfg);
  CHECK((data.sample_shape() == std::vector<int64_t>{1, 2, 2}));
  auto gen = gm::make_generator(0);
  // Batches of 4 over 10 images: steps 0-1 and half of 2 cover epoch 0, each image once.
  std::vector<int> seen(10, 0);
  std::vector<torch::Tensor> xs;
  for (int64_t step = 0; step < 5; ++step) xs.push_back(data.batch(step, 4, gen).x);
  auto all = torch::cat(xs).flatten(1).select(1, 0);  // value of each image = 2 i / 255 - 1
  auto ids = ((all + 1) * 255 / 2).round().to(torch::kInt64);
  for (int64_t i = 0; i < 10; ++i) seen[static_cast<size_t>(ids[i].item<int64_t>())]++;
  CHECK(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
  CHECK(!ids.slice(0, 0, 10).equal(ids.slice(0, 10, 20)));  // epoch 1 is another permutation
  // Asked out of order and from a fresh object: the same batch.
  auto again = gm::data::ImageData::from_config(cfg);
  CHECK(again.batch(3, 4, gen).x.equal(xs[3]));
  CHECK(again.batch(3, 4, gen).y.equal(data.batch(3, 4, gen).y));
  std::filesystem::remove_all(dir);
}

TEST_CASE("ImageData: batches gathered ahead on a worker thread equal those gathered in step") {
  auto dir = mnist_folder("imagedata_prefetch", 10, 2, 2, false);
  auto set = gm::data::read_mnist(dir, "train");
  auto opts = gm::data::ImageData::Options().hflip(true).dequantize(true).seed(5);
  gm::data::ImageData plain(set, opts), ahead(set, gm::data::ImageData::Options(opts).prefetch(true));
  auto g1 = gm::make_generator(7), g2 = gm::make_generator(7);
  // In order (the worker's batch is used), across an epoch's end, then a jump (a resume) and back.
  for (const int64_t step : {0, 1, 2, 3, 4, 5, 11, 12, 3}) {
    CAPTURE(step);
    const auto a = plain.batch(step, 4, g1), b = ahead.batch(step, 4, g2);
    CHECK(torch::equal(a.x, b.x));
    CHECK(torch::equal(a.y, b.y));
  }
  std::filesystem::remove_all(dir);
}

namespace {
/// n random 8 x 8 grey images, labels i % 10 of 10 classes.
gm::data::ImageSet random_set(int64_t n) {
  gm::data::ImageSet set;
  set.images = torch::randint(0, 256, {n, 1, 8, 8}, gm::make_generator(3), torch::kInt64).to(torch::kUInt8);
  set.labels = torch::arange(n, torch::kInt64).remainder(10);
  set.num_classes = 10;
  set.source = "random";
  return set;
}
}  // namespace

TEST_CASE("ImageData: a data-parallel rank's rows of a batch are the whole batch's rows, and the generator ends level") {
  // 12 random images; batches of 10 cut by Trainer::shard_rows-like rows (not contiguous).  Flips and
  // dequantisation noise are drawn for all 10 rows and cut to the rank's: its rows equal the whole batch's
  // bit for bit, and the generator stands where the whole batch leaves it.  EDM augmentation likewise, to
  // float rounding (its reflect padding follows the images at hand), with the same labels exactly.
  const auto set = random_set(12);
  const auto rows = torch::tensor({1, 2, 5, 6, 9}, torch::kInt64);
  for (const double p : {0.0, 1.0}) {
    for (const bool prefetch : {false, true}) {
      CAPTURE(p);
      CAPTURE(prefetch);
      auto opts = gm::data::ImageData::Options().hflip(true).dequantize(true).augment(p).seed(2).prefetch(prefetch);
      gm::data::ImageData data(set, opts);
      auto g_all = gm::make_generator(8), g_mine = gm::make_generator(8);
      for (const int64_t step : {0, 1, 2, 7}) {
        CAPTURE(step);
        const auto all = data.batch(step, 10, g_all), mine = data.batch(step, 10, g_mine, rows);
        CHECK(all.global == 0);
        CHECK(mine.global == 10);
        REQUIRE(mine.x.size(0) == 5);
        CHECK(torch::equal(mine.y, all.y.index_select(0, rows)));
        if (p == 0) {
          CHECK(torch::equal(mine.x, all.x.index_select(0, rows)));
          CHECK_FALSE(mine.a.defined());
        } else {
          CHECK(max_abs(mine.x, all.x.index_select(0, rows)) < 1e-5);
          CHECK(torch::equal(mine.a, all.a.index_select(0, rows)));
        }
        CHECK(torch::equal(torch::rand({4}, g_all), torch::rand({4}, g_mine)));  // the generators level
      }
      // A source's draw (data.source) likewise: the rows of the n draws, gathered and encoded alone.
      const auto all = data.draw(10, g_all), mine = data.draw(10, g_mine, rows);
      CHECK(torch::equal(mine, all.index_select(0, rows)));
      CHECK(torch::equal(torch::rand({4}, g_all), torch::rand({4}, g_mine)));
    }
  }
}

TEST_CASE("data parallel: a rank given only its rows (shard_rows, Batch::global) takes the step it takes cutting the whole batch" * gm::test::own_process) {
  // Each rank of two, simulated in one process (the all-reduce is a no-op: each rank's own share).  One trainer
  // gets the whole batch and cuts its rows itself; the other gets ImageData::batch(..., shard_rows(n)): the
  // rows alone, gathered and encoded (flips, dequantisation) here.  Conditional with label dropout, 10 rows
  // in 3 micro-batches (4, 4, 2); then again from an image source (data.source), which the sharded trainer
  // draws for its rows alone (RowSource).  The same losses, gradient norms and weights, bit for bit.
  using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler>;
  const auto set = random_set(16);
  gm::data::ImageData data(set, gm::data::ImageData::Options().hflip(true).dequantize(true).seed(2));
  auto as_rank = [](auto& trainer, int64_t rank) {
    gm::DataParallel dp;
    dp.rank = rank;
    dp.world = 2;
    dp.all_reduce_sum = [](torch::Tensor&) {};
    dp.broadcast = [](torch::Tensor&) {};
    trainer.set_data_parallel(dp);
  };
  auto net = [] {
    torch::manual_seed(1);
    return gm::UNet(gm::UNetOptions().in_channels(1).image_size(8).channels(8).channel_mult({1, 2}).attention_resolutions({})
                        .num_classes(10).dropout(0));
  };
  const auto options = gm::TrainOptions().seed(5).label_dropout(0.3).accumulate(3);
  for (const auto& [rank, with_source] : {std::pair{0, false}, std::pair{1, false}, std::pair{1, true}}) {
    CAPTURE(rank);
    CAPTURE(with_source);
    Flow whole(net(), options), mine(net(), options);
    as_rank(whole, rank);
    as_rank(mine, rank);
    if (with_source) {
      auto all = [&](int64_t n, const at::Generator& g) { return data.draw(n, g); };
      whole.set_source(all);
      mine.set_source(all, [&](int64_t n, const at::Generator& g, const torch::Tensor& r) { return data.draw(n, g, r); });
    }
    const auto rows = mine.shard_rows(10);
    CHECK(torch::equal(rows, rank == 0 ? torch::tensor({0, 1, 4, 5, 8}, torch::kInt64)
                                       : torch::tensor({2, 3, 6, 7, 9}, torch::kInt64)));
    for (int64_t step = 0; step < 2; ++step) {
      CAPTURE(step);
      const auto a = whole.train_step(data.batch(step, 10, whole.generator()));
      const auto b = mine.train_step(data.batch(step, 10, mine.generator(), rows));
      CHECK(a.loss == b.loss);
      CHECK(a.grad_norm == b.grad_norm);
    }
    const auto wa = whole.net()->parameters(), wb = mine.net()->parameters();
    for (size_t i = 0; i < wa.size(); ++i) CHECK(torch::equal(wa[i], wb[i]));
    // A batch that is not this rank's share is refused in one line, before any draw.
    auto wrong = data.batch(3, 10, mine.generator(), rows);
    wrong.x = wrong.x.slice(0, 0, 4), wrong.y = wrong.y.slice(0, 0, 4);
    CHECK(contains(error_of([&] { (void)mine.train_step(wrong); }),
                   "the batch holds 4 rows; this rank's share of a global batch of 10 is 5 (Trainer::shard_rows)"));
  }
  // In one process every row is the process's own.
  Flow alone(net(), options);
  CHECK_FALSE(alone.shard_rows(10).defined());
  auto share = data.batch(0, 10, alone.generator(), torch::tensor({0, 1}, torch::kInt64));
  CHECK(contains(error_of([&] { (void)alone.train_step(share); }), "needs data parallelism"));
}

namespace {
/// Two data-parallel ranks as two threads of this process: `all_reduce_sum` adds the two ranks' tensors (in
/// the same order on both, so both get the same bits), as Gloo or NCCL would.
struct TwoRanks {
  std::barrier<> meet{2};
  std::array<torch::Tensor, 2> slot;
  gm::DataParallel rank(int64_t r) {
    gm::DataParallel dp;
    dp.rank = r;
    dp.world = 2;
    dp.all_reduce_sum = [this, r](torch::Tensor& t) {
      slot[r] = t.clone();
      meet.arrive_and_wait();
      auto sum = slot[0] + slot[1];
      meet.arrive_and_wait();  // both have read both slots before either writes one again
      t.copy_(sum);
    };
    dp.broadcast = [](torch::Tensor&) {};
    return dp;
  }
  /// Run f(rank) for ranks 0 and 1 at once; rethrows the first failure.
  template <class F>
  void run(F&& f) {
    std::exception_ptr failed[2];
    auto one = [&](int64_t r) {
      try {
        f(r);
      } catch (...) {
        failed[r] = std::current_exception();
      }
    };
    std::thread other(one, 1);
    one(0);
    other.join();
    for (auto& e : failed) if (e) std::rethrow_exception(e);
  }
};
}  // namespace

TEST_CASE("data parallel: with a coupling each rank prepares its rows and the coupling pairs the gathered global batch" *
          gm::test::own_process) {
  // OT-CFM (exact OT) on two ranks (two threads, a real sum between them): in one run each rank is given
  // the whole batch and cuts its rows after the pairing; in the other each is given only its rows
  // (shard_rows), which the trainer gathers into the whole micro-batch before pairing.  The same losses,
  // gradient norms and weights, bit for bit; then again with pairs drawn from the plan and an image source
  // (its draws made per rank and gathered too).  10 rows in micro-batches of 4, 4 and 2, conditional with label dropout.
  using OT = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler,
                         gm::UniformTime, gm::UniformWeight, gm::ExactOTCoupling>;
  const auto set = random_set(16);
  auto net = [] {
    torch::manual_seed(1);
    return gm::UNet(gm::UNetOptions().in_channels(1).image_size(8).channels(8).channel_mult({1, 2}).attention_resolutions({})
                        .num_classes(10).dropout(0));
  };
  const auto options = gm::TrainOptions().seed(5).label_dropout(0.3).accumulate(3);
  for (const auto& [plan, with_source] : {std::pair{false, false}, std::pair{true, true}}) {
    {
      CAPTURE(plan);
      CAPTURE(with_source);
      const auto coupling = gm::ExactOTCoupling(gm::ExactOTCoupling::Options().replace(plan));
      std::vector<std::unique_ptr<OT>> trainers;  // whole 0, whole 1, mine 0, mine 1
      for (int i = 0; i < 4; ++i) {
        trainers.push_back(std::make_unique<OT>(net(), options, gm::Interpolant<gm::Linear>{}, gm::Predict<gm::Velocity>{},
                                                gm::UniformTime{}, gm::UniformWeight{}, coupling));
      }
      std::vector<std::vector<gm::StepStats>> stats(4);
      for (const bool sharded : {false, true}) {
        TwoRanks ranks;
        ranks.run([&](int64_t r) {
          auto& t = *trainers[(sharded ? 2 : 0) + r];
          t.set_data_parallel(ranks.rank(r));
          gm::data::ImageData data(set, gm::data::ImageData::Options().hflip(true).dequantize(true).seed(2));
          if (with_source) {
            auto all = [&data](int64_t n, const at::Generator& g) { return data.draw(n, g); };
            if (sharded) t.set_source(all, [&data](int64_t n, const at::Generator& g, const torch::Tensor& rows) { return data.draw(n, g, rows); });
            else t.set_source(all);
          }
          const auto rows = t.shard_rows(10);
          for (int64_t step = 0; step < 2; ++step) {
            stats[(sharded ? 2 : 0) + r].push_back(
                t.train_step(sharded ? data.batch(step, 10, t.generator(), rows) : data.batch(step, 10, t.generator())));
          }
        });
      }
      CHECK(trainers[2]->shard_rows(10).numel() == 5);
      for (int r = 0; r < 2; ++r) {
        CAPTURE(r);
        for (size_t k = 0; k < 2; ++k) {
          CHECK(stats[r][k].resolved().loss == stats[2 + r][k].resolved().loss);
          CHECK(stats[r][k].resolved().grad_norm == stats[2 + r][k].resolved().grad_norm);
        }
        const auto wa = trainers[r]->net()->parameters(), wb = trainers[2 + r]->net()->parameters();
        for (size_t i = 0; i < wa.size(); ++i) CHECK(torch::equal(wa[i], wb[i]));
      }
      CHECK(stats[0][1].resolved().loss == stats[1][1].resolved().loss);  // the ranks agree (the all-reduced loss)
    }
  }
}

TEST_CASE("a coupling within classes: each image's noise partner is among its own class's rows, by the coupling on that class alone") {
  // Conditional OT with a discrete condition (Kerrigan et al. 2024): the assignment solved per class.  Its cost
  // is the sum of the per-class optima, never below the plan over the whole batch (torchcfm's, across classes).
  auto gen = gm::make_generator(21);
  const auto x0 = torch::randn({40, 1, 8, 8}, gen), x1 = torch::randn({40, 1, 8, 8}, gen);
  const auto y = torch::randint(3, {40}, gen, torch::kInt64);
  auto cost = [&](const torch::Tensor& rows, const torch::Tensor& cols) {
    return (x0.index_select(0, rows) - x1.index_select(0, cols)).to(torch::kFloat64).pow(2).sum().item<double>();
  };
  const auto all = torch::arange(40);
  const auto perm = gm::pair_within_classes(gm::ExactOTCoupling{}, x0, x1, y, gm::make_generator(1));
  CHECK(torch::equal(std::get<0>(torch::sort(perm)), all));  // a permutation
  CHECK(torch::equal(y.index_select(0, perm), y));          // of rows of the same class
  double per_class = 0;
  for (int64_t c = 0; c < 3; ++c) {
    const auto idx = torch::nonzero(y == c).squeeze(1);
    const auto a = gm::min_cost_assignment(gm::squared_distances(x0.index_select(0, idx), x1.index_select(0, idx)));
    per_class += cost(idx, idx.index_select(0, a));
  }
  const double within = cost(all, perm), across = cost(all, gm::ExactOTCoupling{}.pair(x0, x1, gm::make_generator(1)));
  MESSAGE("40 images of 3 classes: transport cost within classes " << within << ", across " << across << ", independent "
          << cost(all, all));
  CHECK(within == doctest::Approx(per_class).epsilon(1e-9));
  CHECK(across < within);
  // Pairs drawn from each class's plan with replacement: both ends of every pair in one class.
  const auto drawn = gm::pairs_within_classes(gm::SinkhornCoupling(gm::SinkhornCoupling::Options().replace(true)), x0, x1, y,
                                              gm::make_generator(2));
  CHECK(drawn.rows.numel() == 40);
  CHECK(torch::equal(y.index_select(0, drawn.rows), y.index_select(0, drawn.cols)));
  CHECK(gm::test::contains(gm::test::error_of([&] {
          (void)gm::pair_within_classes(gm::ExactOTCoupling{}, x0, x1, y.slice(0, 1), gm::make_generator(1));
        }), "batches and labels of the same size"));
  // In the Trainer with a class-conditional UNet whose weights are zero (output zero): the loss is the mean cost of
  // the pairs (velocity target eps - x0), within classes by default and across with couple_within_classes(false).
  using OT = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler,
                         gm::UniformTime, gm::UniformWeight, gm::ExactOTCoupling>;
  for (const bool classes : {true, false}) {
    CAPTURE(classes);
    gm::UNet net(gm::UNetOptions().in_channels(1).image_size(8).channels(8).channel_mult({1, 2}).attention_resolutions({})
                     .num_classes(3).dropout(0));
    torch::NoGradGuard no_grad;
    for (auto& w : net->parameters()) w.zero_();
    OT ot(net, gm::TrainOptions().seed(4).couple_within_classes(classes));
    CHECK(ot.couples_within_classes() == classes);
    auto g = ot.generator().clone();
    (void)gm::UniformTime{}.sample(40, gm::Interpolant<gm::Linear>{}, g, x0.options());
    const auto eps = torch::randn(x0.sizes(), g, x0.options());
    const auto p = classes ? gm::pair_within_classes(gm::ExactOTCoupling{}, x0, eps, y, g) : gm::ExactOTCoupling{}.pair(x0, eps, g);
    const double expected = (eps.index_select(0, p) - x0).to(torch::kFloat64).pow(2).mean().item<double>();
    CHECK(ot.loss(x0, y).item<double>() == doctest::Approx(expected).epsilon(1e-6));
  }
}

TEST_CASE("ImageData: a second image set as the source (data.source), drawn from the generator and checked") {
  auto data_dir = mnist_folder("source_data", 6, 3, 3, false), source_dir = mnist_folder("source_src", 5, 3, 3, false);
  auto other_dir = mnist_folder("source_other", 5, 4, 4, false);
  auto cfg = image_config("mnist", data_dir);
  gm::data::ImageData::add_source_keys(cfg);
  auto data = gm::data::ImageData::from_config(cfg);
  CHECK_FALSE(gm::data::ImageData::source_from_config(cfg, data).has_value());  // gaussian
  cfg.set_from_string("data.source", "mnist", "test");
  CHECK(gm::test::contains(gm::test::error_of([&] { (void)gm::data::ImageData::source_from_config(cfg, data); }),
                           "data.source_root is required"));
  cfg.set_from_string("data.source_root", other_dir.string(), "test");
  CHECK(gm::test::contains(gm::test::error_of([&] { (void)gm::data::ImageData::source_from_config(cfg, data); }),
                           "has samples of shape 1x4x4, the data's are 1x3x3"));
  cfg.set_from_string("data.source_root", source_dir.string(), "test");
  const auto source = gm::data::ImageData::source_from_config(cfg, data);
  REQUIRE(source.has_value());
  auto g1 = gm::make_generator(4), g2 = gm::make_generator(4);
  const auto a = source->draw(64, g1), b = source->draw(64, g2);
  CHECK((a.sizes() == torch::IntArrayRef({64, 1, 3, 3})));
  CHECK(torch::equal(a, b));  // from the generator alone
  // Every draw is one of the source's 5 images (image i holds the value 2 i / 255 - 1 everywhere), all seen.
  auto ids = ((a.flatten(1).select(1, 0) + 1) * 255 / 2).round().to(torch::kInt64);
  CHECK(ids.min().item<int64_t>() >= 0);
  CHECK(ids.max().item<int64_t>() == 4);
  CHECK(std::get<0>(torch::_unique(ids)).numel() == 5);
  for (const auto& d : {data_dir, source_dir, other_dir}) std::filesystem::remove_all(d);
}

TEST_CASE("ImageData: flips, labels, and the pixel encoder round trip") {
  auto dir = gm::test::fresh_dir("flip");
  std::string px;
  for (int i = 0; i < 4; ++i) px += std::string{char(0), char(0), char(255), char(255)};  // 2 x 2 rows: dark | bright
  write(dir / "train-images-idx3-ubyte", idx({4, 1, 4}, px));
  write(dir / "train-labels-idx1-ubyte", idx({4}, std::string{0, 1, 2, 3}));
  auto cfg = image_config("mnist", dir);
  cfg.set_from_string("data.hflip", "true", "test");
  auto data = gm::data::ImageData::from_config(cfg);
  auto gen = gm::make_generator(1);
  auto b = data.batch(0, 64, gen);
  auto first = b.x.select(3, 0).flatten();
  CHECK((first > 0).any().item<bool>());   // some flipped
  CHECK((first < 0).any().item<bool>());   // some not
  CHECK((data.decode(b.x).sizes() == torch::IntArrayRef({64, 1, 1, 4})));

  auto u = torch::arange(256, torch::kInt64).to(torch::kUInt8).view({1, 1, 16, 16});
  for (bool deq : {false, true}) {
    gm::data::PixelEncoder enc{deq};
    auto x = enc.encode(u, gm::make_generator(2));
    CHECK(x.min().item<double>() >= -1.0);
    CHECK(x.max().item<double>() <= 1.0);
    CHECK(enc.decode(x).equal(u));
  }
  CHECK(gm::data::PixelEncoder{}.decode(torch::full({1}, 7.0)).item<int>() == 255);  // clamped

  // ImageData's own decode follows data.dequantize: every pixel of 64 x 4 x 256 dequantised values comes back
  // (decoding by rounding, as it did, put 25% of them one level off).
  auto many = torch::arange(256, torch::kInt64).to(torch::kUInt8).repeat({64, 1, 4, 1}).view({64, 1, 32, 32});
  cfg.set_from_string("data.dequantize", "true", "test");
  auto deq = gm::data::ImageData::from_config(cfg);
  CHECK(deq.decode(deq.encode(many, gm::make_generator(5))).equal(many));
  std::filesystem::remove_all(dir);
}

TEST_CASE("image folders: a test/ split takes the train split's classes, and an empty class is an error") {
  // Layout 1: root/<class>/ for training and root/test/<class>/ for evaluation.
  auto dir = gm::test::fresh_dir("folder_split");
  std::vector<uint8_t> grey(4 * 4, 90);
  auto put = [&](const std::filesystem::path& d, const std::string& name) {
    std::filesystem::create_directories(d);
    stbi_write_png((d / name).c_str(), 4, 4, 1, grey.data(), 4);
  };
  put(dir / "ant", "a.png");
  put(dir / "bee", "b.png");
  put(dir / "zebra", "z.png");
  put(dir / "test" / "bee", "b2.png");
  put(dir / "test" / "zebra", "z2.png");
  const auto train = gm::data::read_image_folder(dir, 4, 1), test = gm::data::read_image_folder(dir, 4, 1, "test");
  CHECK(train.num_classes == 3);  // test/ is not a class
  CHECK((train.class_names == std::vector<std::string>{"ant", "bee", "zebra"}));
  CHECK(test.num_classes == 3);
  CHECK(test.class_names == train.class_names);
  CHECK(test.labels.equal(torch::tensor({1, 2}, torch::kInt64)));  // zebra is 2 in both splits
  put(dir / "test" / "yak", "y.png");
  CHECK(contains(error_of([&] { gm::data::read_image_folder(dir, 4, 1, "test"); }),
                 "class 'yak' is not a class of the train split"));
  std::filesystem::remove_all(dir / "test" / "yak");
  std::filesystem::create_directories(dir / "cow");  // an empty class folder
  CHECK(contains(error_of([&] { gm::data::read_image_folder(dir, 4, 1); }), "cow: no PNG, JPEG or BMP images"));
  std::filesystem::remove_all(dir);

  // Layout 2: sibling root/train/<class>/ and root/test/<class>/.
  auto sib = gm::test::fresh_dir("folder_siblings");
  put(sib / "train" / "ant", "a.png");
  put(sib / "train" / "bee", "b.png");
  put(sib / "test" / "bee", "b2.png");
  const auto t2 = gm::data::read_image_folder(sib, 4, 1), e2 = gm::data::read_image_folder(sib, 4, 1, "test");
  CHECK((t2.class_names == std::vector<std::string>{"ant", "bee"}));
  CHECK(e2.num_classes == 2);
  CHECK(e2.labels.equal(torch::tensor({1}, torch::kInt64)));
  CHECK(contains(error_of([&] { gm::data::read_image_folder(sib, 4, 1, "valid"); }), "split must be train or test"));
  std::filesystem::remove_all(sib);
}

TEST_CASE("LatentEncoder: a TorchScript module with encode and decode, and its bad files" * gm::test::own_process) {
  auto dir = gm::test::fresh_dir("latent");
  if (!gm::test::run_python(dir, "make.py",
                            "import sys, torch\n"
                            "class AE(torch.nn.Module):\n"
                            "    def encode(self, x):\n"
                            "        return torch.nn.functional.avg_pool2d(x, 2) * 3.0\n"
                            "    def decode(self, z):\n"
                            "        return torch.nn.functional.interpolate(z / 3.0, scale_factor=2.0)\n"
                            "    def forward(self, x):\n"
                            "        return self.decode(self.encode(x))\n"
                            "class Half(torch.nn.Module):\n"
                            "    def forward(self, x):\n"
                            "        return x\n"
                            "torch.jit.script(AE()).save(sys.argv[1])\n"
                            "torch.jit.script(Half()).save(sys.argv[2])\n",
                            (dir / "ae.pt").string() + " " + (dir / "half.pt").string())) {
    FAIL("the reference script failed under " << std::string(gm::test::python()) << " (scripts/setup.sh makes it): see " << dir.string());
    std::filesystem::remove_all(dir);
    return;
  }
  auto data_dir = mnist_folder("latent_data", 6, 4, 4, false);
  auto cfg = image_config("mnist", data_dir);
  cfg.set_from_string("data.encoder", (dir / "ae.pt").string(), "test");
  cfg.set_from_string("data.latent_scale", "0.5", "test");
  auto data = gm::data::ImageData::from_config(cfg);
  CHECK((data.sample_shape() == std::vector<int64_t>{1, 2, 2}));
  auto b = data.batch(0, 6, gm::make_generator(0));
  auto pixels = gm::data::PixelEncoder{}.encode(data.set().images);
  // Each image is constant, so encode = 3 * value * 0.5 and decode gives the image back.
  CHECK((b.x.sizes() == torch::IntArrayRef({6, 1, 2, 2})));
  auto u8 = data.decode(b.x);
  CHECK((u8.sizes() == torch::IntArrayRef({6, 1, 4, 4})));
  auto expect = torch::nn::functional::avg_pool2d(pixels, torch::nn::functional::AvgPool2dFuncOptions(2)) * 1.5;
  // The batch is a permutation of the data set: compare sorted values.
  CHECK(max_abs(std::get<0>(b.x.flatten().sort()), std::get<0>(expect.flatten().sort())) < 1e-6);
  CHECK(std::get<0>(u8.flatten().sort()).equal(std::get<0>(data.set().images.flatten().sort())));

  using gm::data::LatentEncoder;
  CHECK(contains(error_of([&] { LatentEncoder(dir / "nope.pt"); }), "nope.pt: no such file"));
  write(dir / "junk.pt", "not a zip");
  CHECK(contains(error_of([&] { LatentEncoder(dir / "junk.pt"); }), "junk.pt: not a TorchScript module"));
  CHECK(contains(error_of([&] { LatentEncoder(dir / "half.pt"); }), "half.pt: the TorchScript module has no method 'encode'"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(data_dir);
}

TEST_CASE("attention: torch's fused scaled_dot_product_attention equals the plain-product reference") {
  // Token counts of gm's networks (7x7 and 14x14 feature maps, DiT's 16 patches) and one longer than the CPU
  // flash kernel's blocks; values and gradients, in float64 (to 1e-12) and float32 (to float tolerance).
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (int64_t tokens : {16, 49, 196, 700}) {
      CAPTURE(tokens);
      auto gen = gm::make_generator(static_cast<uint64_t>(tokens));
      auto opts = torch::TensorOptions().dtype(dtype);
      auto q = torch::randn({2, 3, tokens, 32}, gen, opts).requires_grad_(), k = torch::randn({2, 3, tokens, 32}, gen, opts).requires_grad_(),
           v = torch::randn({2, 3, tokens, 32}, gen, opts).requires_grad_();
      auto fused = gm::nn::attention(q, k, v), plain = gm::nn::attention_reference(q, k, v);
      CHECK((fused.scalar_type() == dtype));
      const double tol = dtype == torch::kFloat64 ? 1e-12 : 2e-5;
      CHECK(max_abs(fused, plain) < tol);
      auto w = torch::randn_like(fused);
      auto gf = torch::autograd::grad({(fused * w).sum()}, {q, k, v});
      auto gp = torch::autograd::grad({(plain * w).sum()}, {q, k, v});
      for (int i = 0; i < 3; ++i) CHECK(max_abs(gf[i], gp[i]) < 10 * tol);
    }
  }
}

TEST_CASE("UNet and DiT: shapes, conditional and unconditional paths, the null class") {
  torch::manual_seed(0);
  gm::UNet unet(gm::UNetOptions().in_channels(3).image_size(16).channels(16).channel_mult({1, 2}).attention_resolutions({8}).num_classes(5).dropout(0));
  gm::DiT dit(gm::DiTOptions().preset("tiny").hidden(32).depth(2).in_channels(3).image_size(16).patch(4).num_classes(5));
  gm::UNet plain(gm::UNetOptions().in_channels(1).image_size(28).channels(16).res_blocks(1));
  gm::DiT plain_dit(gm::DiTOptions().preset("tiny").hidden(32).depth(1).heads(2).image_size(28).patch(7));
  auto x = torch::randn({3, 3, 16, 16}), t = torch::rand({3});
  auto y = torch::tensor({0, 4, 2}, torch::kInt64), null = torch::full({3}, 5, torch::kInt64);
  // Output layers start at zero: perturb every parameter so the outputs depend on their inputs.
  for (auto* m : std::initializer_list<torch::nn::Module*>{unet.get(), dit.get(), plain.get(), plain_dit.get()}) {
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  for (int which = 0; which < 2; ++which) {
    auto f = [&](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c) {
      return which == 0 ? unet->forward(a, b, c) : dit->forward(a, b, c);
    };
    INFO((which == 0 ? "UNet" : "DiT"));
    auto out = f(x, t, y);
    CHECK((out.sizes() == x.sizes()));
    CHECK(max_abs(f(x, t, null), which == 0 ? unet->forward(x, t) : dit->forward(x, t)) < 1e-6);  // null = unconditional
    CHECK(max_abs(out, f(x, t, null)) > 1e-4);                                                     // labels matter
    CHECK(max_abs(f(x, t, torch::tensor({1, 4, 2}, torch::kInt64)).slice(0, 1), out.slice(0, 1)) < 1e-5);  // per sample
    CHECK(contains(error_of([&] { f(x, t, torch::tensor({0, 6, 1}, torch::kInt64)); }), "class label 6 is outside 0..5"));
    auto g = torch::autograd::grad({f(x, t, y).sum()}, {which == 0 ? unet->parameters()[0] : dit->parameters()[0]});
    CHECK(g[0].abs().sum().item<double>() > 0);
  }
  CHECK(unet->null_class() == 5);
  CHECK(plain->null_class() == -1);
  auto x1 = torch::randn({2, 1, 28, 28});
  CHECK((plain->forward(x1, torch::rand({2})).sizes() == x1.sizes()));
  CHECK((plain_dit->forward(x1, torch::tensor(0.5)).sizes() == x1.sizes()));
  CHECK(contains(unet->describe(), "UNet"));
  CHECK(contains(error_of([] { gm::DiTOptions().preset("huge"); }), "preset must be tiny, S, B, L or XL"));
  CHECK(contains(error_of([] { gm::DiT(gm::DiTOptions().image_size(28).patch(3)); }), "patch size must divide"));
  // An image condition of extra input channels.
  gm::UNet cond(gm::UNetOptions().in_channels(1).image_size(8).channels(8).channel_mult({1}).attention_resolutions({}).cond_channels(2));
  CHECK((cond->forward(torch::randn({2, 1, 8, 8}), torch::rand({2}), {}, torch::randn({2, 2, 8, 8})).sizes() ==
         torch::IntArrayRef({2, 1, 8, 8})));
  CHECK(contains(error_of([&] { cond->forward(torch::randn({2, 1, 8, 8}), torch::rand({2})); }), "needs an image condition"));
  CHECK(gm::nn::parameter_count(*unet) > 0);
}

TEST_CASE("label dropout 1 trains the null class; guidance 1 is the conditional model and 0 the unconditional") {
  using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler>;
  auto make = [](double dropout) {
    torch::manual_seed(1);
    gm::UNet net(gm::UNetOptions().in_channels(1).image_size(8).channels(8).channel_mult({1, 2}).attention_resolutions({4}).num_classes(3).dropout(0));
    {
      torch::NoGradGuard ng;
      for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);
    }
    return Flow(net, gm::TrainOptions().seed(5).label_dropout(dropout));
  };
  auto x = torch::randn({6, 1, 8, 8});
  auto y = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  auto a = make(1.0), b = make(0.0);
  CHECK(a.loss(x, y).item<double>() == doctest::Approx(b.loss(x, torch::full({6}, 3, torch::kInt64)).item<double>()).epsilon(1e-6));
  auto c = make(0.0), d = make(0.0);
  CHECK(c.loss(x, y).item<double>() != doctest::Approx(d.loss(x, torch::full({6}, 3, torch::kInt64)).item<double>()).epsilon(1e-6));

  auto tr = make(0.0);
  auto noise = torch::randn({6, 1, 8, 8});
  auto sample = [&](const gm::Conditioning& cnd) { return tr.sample(gm::SampleOptions().n(6).nfe(4).noise(noise).conditioning(cnd), gm::EulerSampler{}); };
  auto cond = sample({y, 1.0}), uncond = sample({});
  CHECK(tr.last_nfe() == 4);
  auto w1 = sample({y, 1.0}), w0 = sample({y, 0.0}), w3 = sample({y, 3.0});
  CHECK(tr.last_nfe() == 4);  // both branches in one batch per step
  CHECK(max_abs(w1, cond) < 1e-6);
  CHECK(max_abs(w0, uncond) < 1e-6);
  CHECK(max_abs(w3, cond) > 1e-4);
  // One guided field step by hand: out_null + 3 (out_cond - out_null).
  auto field = tr.make_field({y, 3.0});
  auto cf = tr.make_field({y, 1.0});
  auto uf = tr.make_field({});
  torch::NoGradGuard ng;
  tr.net()->eval();
  auto oc = cf.output(noise, 0.7), ou = uf.output(noise, 0.7);
  CHECK(max_abs(field.output(noise, 0.7), ou + 3 * (oc - ou)) < 1e-5);
  CHECK(contains(error_of([&] { tr.make_field({torch::tensor({0, 4}, torch::kInt64), 2.0}); }), "sampling labels must be in 0..3"));
}

TEST_CASE_TEMPLATE("guided, class and unconditional sampling run with every sampler on every process", S,
                   GM_ALL_SCHEDULES) {
  torch::manual_seed(2);
  gm::DiT net(gm::DiTOptions().preset("tiny").hidden(16).depth(1).heads(2).image_size(8).patch(4).num_classes(2));
  {
    torch::NoGradGuard ng;
    for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  using Flow = gm::Trainer<gm::Interpolant<S>, gm::Predict<gm::Velocity>, gm::DiT, gm::EulerSampler>;
  Flow tr(net, gm::TrainOptions());
  auto noise = tr.initial_noise({4, 1, 8, 8});
  const auto labels = torch::tensor({0, 1, 0, 1}, torch::kInt64);
  gm::for_each_type<gm::type_list<gm::EulerSampler, gm::HeunSampler, gm::MidpointSampler, gm::RK4Sampler, gm::DDIMSampler,
                                  gm::DDPMSampler, gm::DPMSolverPP2M, gm::DPMSolverPP3M, gm::UniPC<2>, gm::UniPC<3>,
                                  gm::EulerMaruyamaSampler, gm::PCSampler, gm::DopriSampler>>([&]<class Smp>() {
    INFO(Smp::name);
    for (const auto& c : {gm::Conditioning{labels, 2.5}, gm::Conditioning{labels, 1.0}, gm::Conditioning{}}) {
      auto out = tr.sample(gm::SampleOptions().n(4).nfe(std::max<int64_t>(6, 6 * gm::evals_per_step(Smp{}))).noise(noise).conditioning(c), Smp{});
      CHECK((out.sizes() == noise.sizes()));
      CHECK(torch::isfinite(out).all().template item<bool>());
    }
  });
}

TEST_CASE("image_grid lays images out in rows with padding") {
  auto u8 = torch::zeros({5, 1, 3, 3}, torch::kUInt8);
  u8[4].fill_(200);
  auto img = gm::io::image_grid(u8, 2, 1, 255, 2);
  CHECK(img.width == 2 * (6 + 1) + 1);
  CHECK(img.height == 3 * (6 + 1) + 1);
  CHECK(img.rgb[0] == 255);                                  // padding
  CHECK(img.rgb[(1 * img.width + 1) * 3] == 0);              // image 0
  CHECK(img.rgb[((1 + 2 * 7) * img.width + 1) * 3] == 200);  // image 4: row 2, column 0
}

TEST_CASE("UNet: attention by level, at the same levels down and up, and a resolution no level has is an error") {
  auto blocks = [](gm::UNet& u, const std::string& name) {
    for (const auto& c : u->named_children()) {
      if (c.key() == name) return static_cast<int64_t>(c.value()->children().size());
    }
    return int64_t{-1};
  };
  // 28 x 28 with levels 28, 14, 7: attention at 14 is level 1's 2 encoder and 3 decoder blocks (ADM's
  // attention_ds 2).  Before, the decoder doubled up from the bottom (4, 8, 16, 32) and had none at 14.
  gm::UNet u(gm::UNetOptions().in_channels(1).image_size(28).channels(16).res_blocks(2).attention_resolutions({14})
                 .dropout(0));
  CHECK(blocks(u, "down_attn") == 2);
  CHECK(blocks(u, "up_attn") == 3);
  auto x = torch::randn({2, 1, 28, 28});
  CHECK((u->forward(x, torch::rand({2})).sizes() == x.sizes()));
  // Odd sizes round up on the way down (15 -> 8 -> 4), and the decoder meets the same sizes.
  gm::UNet odd(gm::UNetOptions().in_channels(1).image_size(15).channels(16).res_blocks(1).attention_resolutions({8, 4})
                   .dropout(0));
  CHECK(blocks(odd, "down_attn") == 2);
  CHECK(blocks(odd, "up_attn") == 4);
  auto xo = torch::randn({1, 1, 15, 15});
  CHECK((odd->forward(xo, torch::rand({1})).sizes() == xo.sizes()));
  // model.attention=7 on 32 x 32 (levels 32, 16, 8) used to give no attention silently.
  const auto msg = gm::test::error_of([] { gm::UNet(gm::UNetOptions().image_size(32).attention_resolutions({7})); });
  CHECK(contains(msg, "UNet attention at 7: no level of this UNet has that resolution"));
  CHECK(contains(msg, "32, 16, 8"));
}

namespace {
/// The largest absolute entry.
double peak(const torch::Tensor& t) { return t.numel() ? t.abs().max().item<double>() : 0.0; }
/// A smooth blob exp(-|p - centre|^2 / (2 s^2)) on an h x w grid, centre in pixel coordinates.
torch::Tensor blob(int64_t h, int64_t w, double cx, double cy, double s) {
  auto ys = torch::arange(h, torch::kFloat64).view({h, 1}), xs = torch::arange(w, torch::kFloat64).view({1, w});
  return torch::exp(-((xs - cx).pow(2) + (ys - cy).pow(2)) / (2 * s * s)).to(torch::kFloat32).view({1, 1, h, w});
}
/// The blob's centre of mass (x, y) and its mean squared radius about it.
std::array<double, 3> moments(const torch::Tensor& img) {
  auto m = img.squeeze().to(torch::kFloat64).clamp_min(0);
  const int64_t h = m.size(0), w = m.size(1);
  auto ys = torch::arange(h, torch::kFloat64).view({h, 1}), xs = torch::arange(w, torch::kFloat64).view({1, w});
  const double total = m.sum().item<double>(), cx = (m * xs).sum().item<double>() / total,
               cy = (m * ys).sum().item<double>() / total;
  const double r2 = (m * ((xs - cx).pow(2) + (ys - cy).pow(2))).sum().item<double>() / total;
  return {cx, cy, r2};
}
torch::Tensor affine3(double a, double b, double c, double d, double e, double f) {
  return torch::tensor({a, b, c, d, e, f, 0.0, 0.0, 1.0}, torch::kFloat32).view({1, 3, 3});
}
}  // namespace

TEST_CASE("EDM augmentation: the resampling moves, rotates and scales a blob as its matrix says, and keeps a constant") {
  using gm::data::AugmentPipe;
  const int64_t n = 32;
  // Output pixel p (centred coordinates) reads input pixel G_inv p: a translation by (-3, 2) in G_inv moves
  // the blob by (+3, -2).
  auto x = blob(n, n, 14.0, 17.0, 2.5);
  auto m0 = moments(x);
  auto moved = moments(AugmentPipe::transform(x, affine3(1, 0, -3, 0, 1, 2)));
  CHECK(moved[0] == doctest::Approx(m0[0] + 3).epsilon(0.002));
  CHECK(moved[1] == doctest::Approx(m0[1] - 2).epsilon(0.002));
  CHECK(moved[2] == doctest::Approx(m0[2]).epsilon(0.01));
  // The identity resamples to the image itself, up to the filter's error on a smooth image.
  CHECK(peak(AugmentPipe::transform(x, affine3(1, 0, 0, 0, 1, 0)) - x) < 2e-3);
  // A quarter turn about the centre (15.5, 15.5): G_inv = rotate(-90 deg) sends output (u, v) to (v, -u).
  // The blob lands where the turned pixel grid puts it; the values differ by 2% of the peak because the
  // sym6 filter is not symmetric, so a turn between upsampling and downsampling does not cancel (EDM's
  // pipeline gives the same 0.0201 here, and moves the centre by the same 0.1 px).
  auto turned = AugmentPipe::transform(x, affine3(0, 1, 0, -1, 0, 0));
  auto expect = x.transpose(2, 3).flip({3});
  CHECK(peak(turned - expect) < 0.025);
  CHECK(std::abs(moments(turned)[0] - moments(expect)[0]) < 0.15);  // the filter's phase: 0.1 px here
  CHECK(std::abs(moments(turned)[1] - moments(expect)[1]) < 0.15);
  // Scaling by 1.5 (G_inv = 1/1.5) about the centre: the mean squared radius grows 1.5^2-fold.
  auto big = moments(AugmentPipe::transform(blob(n, n, 15.5, 15.5, 2.5), affine3(1 / 1.5, 0, 0, 0, 1 / 1.5, 0)));
  CHECK(big[2] == doctest::Approx(2.25 * moments(blob(n, n, 15.5, 15.5, 2.5))[2]).epsilon(0.01));
  // A constant image stays constant where the reflect padding covers what the transform reads: all but the
  // strongest shrinks, whose reach EDM's pipeline caps at the image size (zeros enter at the border).
  auto gen = gm::make_generator(3);
  auto constant = torch::full({64, 3, 16, 16}, 0.3f);
  auto [out, labels] = AugmentPipe(AugmentPipe::Options().p(1.0))(constant, gen);
  const double off = (out - constant).abs().gt(1e-4).to(torch::kFloat64).mean().item<double>();
  MESSAGE("constant image at p = 1: " << off << " of pixels off by > 1e-4, at most " << peak(out - constant));
  CHECK(off < 0.01);
  CHECK(peak(out - constant) < 0.01);
  CHECK(peak(AugmentPipe::transform(constant.slice(0, 0, 1), affine3(0.7071, 0.7071, 0, -0.7071, 0.7071, 0)) -
             constant.slice(0, 0, 1)) < 1e-5);  // a 45-degree turn reads only inside the padding
  CHECK((labels.sizes() == torch::IntArrayRef({64, AugmentPipe::label_dim})));
  // Off the CPU the padding is the most any transform may reach, with no read of the batch's reach from the
  // device: the same images to float rounding, for a shift, a turn, a shrink, a stretch, a large zoom out
  // (the reach capped in both) and the identity, on random images.
  auto g = torch::cat({affine3(1, 0, -3, 0, 1, 2), affine3(0.866, 0.5, 1, -0.5, 0.866, 0), affine3(1.25, 0, 0, 0, 1.25, 0),
                       affine3(0.9, 0.2, 0, 0.1, 1.2, -1), affine3(3, 0, 0, 0, 3, 0), affine3(1, 0, 0, 0, 1, 0)});
  auto noise = torch::rand({6, 3, 16, 16});
  const auto batch_reach = AugmentPipe::transform(noise, g, false), full = AugmentPipe::transform(noise, g, true);
  MESSAGE("full padding against the batch's reach: max |difference| " << peak(full - batch_reach));
  CHECK(peak(full - batch_reach) < 1e-5);
  CHECK(torch::equal(AugmentPipe::transform(noise, g), batch_reach));  // the CPU's choice: the batch's reach
}

TEST_CASE("EDM augmentation: each transform at its probability, labels zero where it is off, the same draws the same") {
  using gm::data::AugmentPipe;
  const int64_t n = 4000;
  auto images = torch::rand({n, 1, 8, 8});
  auto gen = gm::make_generator(11);
  auto [out, labels] = AugmentPipe(AugmentPipe::Options().p(0.12))(images, gen);
  auto on = labels.ne(0).to(torch::kFloat64).mean(0);  // fraction of images with each label non-zero
  CHECK(on[0].item<double>() == doctest::Approx(0.5).epsilon(0.06));     // x-flip: always drawn, 1/2
  CHECK(on[1].item<double>() == doctest::Approx(0.06).epsilon(0.25));    // y-flip: p, then 1/2
  CHECK(on[2].item<double>() == doctest::Approx(0.12).epsilon(0.15));    // scale
  CHECK(on[4].item<double>() == doctest::Approx(0.12).epsilon(0.15));    // rotation's sine
  CHECK(on[5].item<double>() == doctest::Approx(0.12).epsilon(0.15));    // anisotropy
  CHECK(on[7].item<double>() == doctest::Approx(0.12).epsilon(0.15));    // translation
  // The rotation is uniform on the circle: cos - 1 and sin lie on the unit circle shifted by -1.
  auto rot = labels.index({torch::indexing::Slice(), 4}).ne(0);
  auto c = labels.index({rot, 3}) + 1, s = labels.index({rot, 4});
  CHECK(peak(c * c + s * s - 1) < 1e-5);
  // An image whose labels are all zero is the image itself, up to the resampling filter.
  auto untouched = labels.eq(0).all(1);
  CHECK(untouched.sum().item<int64_t>() > 1000);
  auto smooth = blob(8, 8, 3.5, 3.5, 2.0).expand({n, 1, 8, 8}).contiguous();
  auto again = AugmentPipe(AugmentPipe::Options().p(0.12))(smooth, gm::make_generator(11));
  CHECK(torch::equal(again.second, labels));  // the same generator state draws the same transforms
  CHECK(peak(again.first.index({untouched}) - smooth.index({untouched})) < 5e-3);
  // An x-flipped image with nothing else is the mirror image.
  auto flipped_only = labels.index({torch::indexing::Slice(), 0}).eq(1) & labels.slice(1, 1).eq(0).all(1);
  CHECK(peak(again.first.index({flipped_only}) - smooth.index({flipped_only}).flip({3})) < 5e-3);
  // A picture to look at: Fashion-MNIST at p = 1, the first row as read.
  const std::filesystem::path root = "/usr/share/datasets/fashion-mnist";
  if (std::filesystem::exists(root / "t10k-images-idx3-ubyte.gz")) {
    auto s = gm::data::read_mnist(root, "test");
    auto x = s.images.slice(0, 0, 8).to(torch::kFloat32) / 127.5 - 1;
    std::vector<torch::Tensor> rows{x};
    for (int k = 0; k < 5; ++k) rows.push_back(AugmentPipe(AugmentPipe::Options().p(1.0))(x, gen).first);
    auto u8 = ((torch::cat(rows) + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8);
    const auto dir = gm::test::fresh_dir("augment");
    std::filesystem::create_directories(dir);
    gm::io::write_png(dir / "augment_p1.png", gm::io::image_grid(u8, 8));
  }
}

TEST_CASE("UNet with augmentation labels: zero labels are no augmentation, and the trainer checks their number") {
  gm::UNet net(gm::UNetOptions().channels(8).channel_mult({1, 2}).res_blocks(1).attention_resolutions({}).image_size(8)
                   .augment_dim(9));
  {
    torch::NoGradGuard ng;
    for (auto& p : net->parameters()) p.normal_(0, 0.1);  // the output layer starts at zero: give it weights
  }
  net->eval();
  auto x = torch::randn({4, 1, 8, 8}), t = torch::rand({4});
  auto plain = net->forward(x, t);
  CHECK(peak(net->forward(x, t, {}, {}, torch::zeros({4, 9})) - plain) < 1e-6);
  CHECK(peak(net->forward(x, t, {}, {}, torch::randn({4, 9})) - plain) > 1e-3);
  CHECK(contains(error_of([&] { net->forward(x, t, {}, {}, torch::zeros({4, 3})); }), "takes 9 augmentation labels"));
  using T = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::UNet, gm::HeunSampler>;
  T trainer(net, gm::TrainOptions().batch_size(4));
  CHECK(std::isfinite(trainer.train_step(gm::Batch{x, {}, {}, torch::randn({4, 9})}).loss));
  CHECK(contains(error_of([&] { trainer.train_step(gm::Batch{x, {}, {}, torch::randn({4, 5})}); }),
                 "carries 5 augmentation labels a sample, but the network takes 9"));
  using D = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::DiT, gm::HeunSampler>;
  D dit(gm::DiT(gm::DiTOptions().preset("tiny").image_size(8).patch(4)), gm::TrainOptions().batch_size(4));
  CHECK(contains(error_of([&] { dit.train_step(gm::Batch{x, {}, {}, torch::randn({4, 9})}); }),
                 "needs a network that takes augmentation labels"));
}

TEST_CASE("EDM2's magnitude-preserving pieces keep unit magnitude: mp_silu, mp_sum, mp_cat, MPFourier, MPConv") {
  using namespace gm::nn;
  torch::manual_seed(5);
  auto z = torch::randn({1 << 20}, torch::kFloat64), z2 = torch::randn({1 << 20}, torch::kFloat64);
  CHECK(mp_silu(z).pow(2).mean().item<double>() == doctest::Approx(1.0).epsilon(0.01));
  CHECK(mp_sum(z, z2, 0.3).pow(2).mean().item<double>() == doctest::Approx(1.0).epsilon(0.01));
  // mp_cat gives a and b the shares (1 - t)^2 and t^2 (normalised) of the magnitude, whatever their widths.
  auto a = torch::randn({2000, 24, 1, 1}, torch::kFloat64), b = torch::randn({2000, 8, 1, 1}, torch::kFloat64);
  auto cat = mp_cat(a, b, 0.3);
  CHECK(cat.pow(2).mean().item<double>() == doctest::Approx(1.0).epsilon(0.01));
  const double share_a = cat.slice(1, 0, 24).pow(2).sum().item<double>() / cat.pow(2).sum().item<double>();
  CHECK(share_a == doctest::Approx(0.49 / 0.58).epsilon(0.01));
  MPFourier fourier(4096);
  CHECK(fourier->forward(torch::rand({64})).pow(2).mean().item<double>() == doctest::Approx(1.0).epsilon(0.05));
  // MPConv: a training forward rescales the stored weights to unit RMS per output channel (forced weight
  // normalisation); the output of unit-variance input has unit variance; an eval forward leaves them alone.
  MPConv conv(16, 32, 3);
  {
    torch::NoGradGuard ng;
    conv->weight.mul_(3.0);
  }
  conv->eval();
  auto x = torch::randn({64, 16, 12, 12});
  auto before = conv->weight.clone();
  auto y_eval = conv->forward(x);
  CHECK(torch::equal(conv->weight, before));
  conv->train();
  auto y = conv->forward(x);
  auto rms = conv->weight.detach().flatten(1).pow(2).mean(1).sqrt();
  CHECK(peak(rms - 1) < 1e-3);
  CHECK(peak(y - y_eval) < 1e-3);  // the stored scale is irrelevant, up to normalize's eps = 1e-4
  const double var = y.slice(2, 1, -1).slice(3, 1, -1).var().item<double>();  // away from the zero padding
  CHECK(var == doctest::Approx(1.0).epsilon(0.1));
  CHECK(mp_normalize(torch::full({3, 5}, 2.0), {1}).eq(torch::full({3, 5}, 2.0) / (1e-4 + 2.0)).all().item<bool>());
}

TEST_CASE("EDM2UNet: shapes, zero output at initialisation, magnitudes near one inside, the null class, levels") {
  gm::EDM2UNet net(gm::EDM2UNetOptions().channels(16).channel_mult({1, 2, 2}).res_blocks(1).attention_resolutions({7})
                       .image_size(28).num_classes(10).head_channels(16));
  auto x = torch::randn({6, 1, 28, 28}), t = torch::randn({6});
  auto y = torch::tensor({0, 1, 2, 3, 4, 10}, torch::kInt64);
  CHECK(peak(net->forward(x, t, y)) == 0);  // out_gain starts at 0, as EDM2's
  for (auto& item : net->named_parameters()) {
    if (item.key().find("gain") != std::string::npos) {
      torch::NoGradGuard ng;
      item.value().fill_(1.0);
    }
  }
  net->eval();
  auto out = net->forward(x, t, y);
  CHECK((out.sizes() == x.sizes()));
  const double rms = out.pow(2).mean().sqrt().item<double>();
  MESSAGE("EDM2UNet output RMS with unit gains on N(0, 1) input: " << rms);
  CHECK(rms > 0.7);  // 1.0005 here: magnitude preserved through 13 blocks
  CHECK(rms < 1.4);
  // The null class is the zero one-hot: undefined labels give the same output as label 10.
  CHECK(peak(net->forward(x, t) - net->forward(x, t, torch::full({6}, 10, torch::kInt64))) < 1e-5);
  CHECK(peak(net->forward(x, t, y) - net->forward(x, t, torch::zeros({6}, torch::kInt64))) > 1e-4);
  CHECK(net->logvar(t).sizes() == torch::IntArrayRef({6}));
  CHECK(contains(error_of([&] { gm::EDM2UNet(gm::EDM2UNetOptions().image_size(28).channel_mult({1, 2, 2, 2})); }),
                 "28 is not a multiple of 8"));
  CHECK(contains(error_of([&] { net->forward(x, t, torch::full({6}, 11, torch::kInt64)); }), "outside 0..10"));
}

TEST_CASE("EDM2UNet: attention heads as EDM2 counts them, out // head_channels, none in a block narrower than a head") {
  // NVlabs/edm2 training/networks_edm2.py, Block.__init__: self.num_heads = out_channels // channels_per_head if
  // attention else 0; the qkv and proj layers exist only where num_heads != 0.
  auto edm2_heads = [](int64_t out, int64_t per_head, bool attention) { return attention ? out / per_head : 0; };
  for (int64_t per_head : {16, 32, 64, 128}) {
    gm::EDM2UNet net(gm::EDM2UNetOptions().channels(32).channel_mult({1, 2}).res_blocks(1).attention_resolutions({4})
                         .image_size(8).head_channels(per_head));
    // Four blocks at resolution 4 (32 * 2 = 64 channels) ask for attention: the encoder's one, the decoder's
    // first (always, as EDM2's) and its two at that level.  Each attention has a qkv and a proj weight.
    const int64_t expected = edm2_heads(64, per_head, true) > 0 ? 4 * 2 : 0;
    int64_t qkv_proj = 0;
    for (const auto& item : net->named_parameters()) {
      if (contains(item.key(), "qkv") || contains(item.key(), "proj")) ++qkv_proj;
    }
    CAPTURE(per_head);
    CHECK(qkv_proj == expected);
    auto x = torch::randn({2, 1, 8, 8});
    CHECK(net->forward(x, torch::randn({2})).sizes() == x.sizes());
  }
  CHECK(edm2_heads(32, 64, true) == 0);  // the case: channels 32, head_channels 64: no attention at all
}

TEST_CASE("LearnedLogVar: the loss is error / e^u + u with the network's u, least where e^u is the error") {
  // The minimiser over u: d/du (e / e^u + u) = 0 at u = log e.
  auto e = torch::tensor({0.01, 0.5, 3.0}, torch::kFloat64);
  auto u = torch::log(e).requires_grad_(true);
  gm::LearnedLogVar<>::combine(e, u).sum().backward();
  CHECK(peak(u.grad()) < 1e-12);
  // Through the trainer: the same draws and weights with EDMWeight alone give the error e; the learned
  // weighting's loss on a one-sample batch is e / e^u + u with u = logvar(c_noise) at the drawn time.
  auto net = gm::EDM2UNet(gm::EDM2UNetOptions().channels(8).channel_mult({1, 2}).res_blocks(1)
                              .attention_resolutions({}).image_size(8));
  using Plain = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::EDM2UNet, gm::HeunSampler,
                            gm::EDMLogNormalTime, gm::EDMWeight>;
  using Learned = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::EDM2UNet, gm::HeunSampler,
                              gm::EDMLogNormalTime, gm::LearnedLogVar<gm::EDMWeight>>;
  Plain plain(net, gm::TrainOptions().seed(4));
  Learned learned(net, gm::TrainOptions().seed(4));
  net->eval();  // no forced normalisation between the two calls
  auto x0 = torch::randn({1, 1, 8, 8});
  auto t = gm::EDMLogNormalTime{}.sample(1, gm::Interpolant<gm::EDM>{}, learned.generator().clone(), x0.options());
  const double err = plain.loss(x0).item<double>();
  const double lv = net->logvar(learned.predict().network_time(t, learned.process())).item<double>();
  CHECK(learned.loss(x0).item<double>() == doctest::Approx(err * std::exp(-lv) + lv).epsilon(1e-5));
  // Training moves u: the log-variance head gets gradients and the step is finite.
  auto before = net->named_parameters()["logvar_linear.weight"].clone();
  net->train();
  CHECK(std::isfinite(learned.train_step(torch::randn({16, 1, 8, 8})).loss));
  CHECK(peak(net->named_parameters()["logvar_linear.weight"] - before) > 0);
}

namespace {
/// The central difference (f(x + h v) - f(x - h v)) / 2h of a function of several inputs.
torch::Tensor central_difference(const gm::JVPFunction& f, std::vector<torch::Tensor> x, const std::vector<torch::Tensor>& v,
                                 double h) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> plus, minus;
  for (size_t i = 0; i < x.size(); ++i) plus.push_back(x[i] + h * v[i]), minus.push_back(x[i] - h * v[i]);
  return (f(plus) - f(minus)) / (2 * h);
}
}  // namespace

TEST_CASE("gm::jvp: forward mode equals the double-backward form and central differences on gm's networks") {
  torch::manual_seed(1);
  auto unet = gm::UNet(gm::UNetOptions().channels(8).channel_mult({1, 2}).res_blocks(1).attention_resolutions({4})
                           .image_size(8).head_channels(4).num_classes(3).dropout(0));
  auto edm2 = gm::EDM2UNet(gm::EDM2UNetOptions().channels(8).channel_mult({1, 2}).res_blocks(1)
                               .attention_resolutions({4}).image_size(8).head_channels(4));
  auto dit = gm::DiT(gm::DiTOptions().preset("tiny").hidden(16).depth(2).heads(2).image_size(8).patch(4));
  auto mlp = gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(2));
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{unet.get(), edm2.get(), dit.get(), mlp.get()}) {
    m->to(torch::kFloat64);
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.normal_(0, 0.2);  // zero-initialised output layers get weights
    m->eval();
  }
  for (auto& item : edm2->named_parameters()) {
    torch::NoGradGuard ng;
    if (item.key().find("gain") != std::string::npos) item.value().fill_(1.0);
  }
  const auto f64 = torch::kFloat64;
  auto z = torch::randn({3, 1, 8, 8}, f64), v = torch::randn({3, 1, 8, 8}, f64);
  auto r = torch::rand({3}, f64) * 0.5, t = 0.5 + torch::rand({3}, f64) * 0.5;
  auto y = torch::tensor({0, 2, 3}, torch::kInt64);
  // MeanFlow's form: u(z, r, t) along (v, 0, 1); here the networks see (t - r) through their time input.
  const std::vector<std::pair<std::string, gm::JVPFunction>> nets{
      {"UNet", [&](const std::vector<torch::Tensor>& a) { return unet->forward(a[0], a[2] - a[1], y) * a[2].view({-1, 1, 1, 1}); }},
      {"EDM2UNet", [&](const std::vector<torch::Tensor>& a) { return edm2->forward(a[0], a[2] - a[1]); }},
      {"DiT", [&](const std::vector<torch::Tensor>& a) { return dit->forward(a[0], a[2] + a[1]); }}};
  for (const auto& [name, f] : nets) {
    CAPTURE(name);
    const std::vector<torch::Tensor> x{z, r, t}, dir{v, torch::zeros_like(r), torch::ones_like(t)};
    auto fwd = gm::jvp(f, x, dir, gm::JVPMode::forward);
    auto rev = gm::jvp(f, x, dir, gm::JVPMode::double_backward);
    auto fd = central_difference(f, x, dir, 1e-7);  // small: sinusoidal time features turn at 1000 rad per unit
    const double scale = fd.abs().max().item<double>();
    MESSAGE(name << ": max |forward - double backward| " << peak(fwd.tangent - rev.tangent) << ", |forward - central "
                 << "difference| " << peak(fwd.tangent - fd) << " on tangents up to " << scale);
    CHECK(scale > 1e-3);
    CHECK(peak(fwd.tangent - rev.tangent) < 1e-10 * scale);
    CHECK(peak(fwd.tangent - fd) < 1e-6 * scale);
    CHECK(peak(fwd.output - f(x)) < 1e-12);
  }
  // One input; the output keeps its graph to the parameters, the tangent is detached (a stop-gradient target).
  auto x2 = torch::randn({16, 2}, f64), v2 = torch::randn({16, 2}, f64), t2 = torch::rand({16}, f64);
  auto one = gm::jvp([&](const torch::Tensor& a) { return mlp->forward(a, t2); }, x2, v2);
  CHECK(!one.tangent.requires_grad());
  (one.output - one.tangent).pow(2).sum().backward();
  for (const auto& p : mlp->parameters()) CHECK(p.grad().defined());
  CHECK(gm::detail::jvp_depth() == 0);
  CHECK(contains(error_of([&] { gm::jvp(nets[0].second, {z, r, t}, {v, r}); }), "3 inputs but 2 tangents"));
}
