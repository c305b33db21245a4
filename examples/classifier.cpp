// A Fashion-MNIST classifier whose features score generated images: FD-FMNIST and class agreement
// (--mode=eval of the image examples reads runs/classifier/classifier.safetensors).
#include <gm/eval/classifier.hpp>
#include <gm/eval/feature_net.hpp>
#include <gm/experiment.hpp>
#include <gm/train/classifier.hpp>

int main(int argc, char** argv) {
  gm::Experiment ex("classifier", "A small CNN classifier whose penultimate features score generated images.");
  gm::data::ImageData::add_keys(ex.config());
  ex.config().add<int64_t>("model.width", 32, "channels of the first convolution", gm::check::at_least(8));
  ex.config().add<int64_t>("model.features", 128, "penultimate feature size", gm::check::at_least(2));
  ex.config().set_default("training.steps", 1500).set_default("training.batch_size", 128).set_default("training.lr", 2e-3);
  ex.config().set_default("data.hflip", true).set_default("training.log_every", 250);
  return ex.main(argc, argv, [&] {
    const auto& cfg = ex.config();
    if (cfg.get<std::string>("mode") != "train") throw gm::Error("gm: mode: the classifier only trains (mode = train)");
    auto train = gm::data::ImageData::from_config(cfg, ex.device());
    const auto test = gm::data::ImageData::read(cfg, "test");
    gm::RunDir run(cfg.get<std::string>("workdir"), cfg, {"mode", "device", "workdir", "training.log_every", "training.threads"},
                   argc, argv, gm::RunDir::Open::create_or_resume);
    const auto out = run.path() / "classifier.safetensors";
    if (std::filesystem::exists(out)) throw gm::Error("gm: " + out.string() + " exists; remove it to train again");
    gm::configure_threads(static_cast<int>(cfg.get<int64_t>("training.threads")), gm::Precision::fp32, ex.device(), true);
    gm::ImageClassifier net(gm::ImageClassifierOptions()
                                .channels(train.sample_shape()[0]).image_size(train.sample_shape()[1])
                                .num_classes(train.num_classes()).width(cfg.get<int64_t>("model.width"))
                                .features(cfg.get<int64_t>("model.features")));
    net->to(ex.device());
    run.log("classifier: " + train.describe() + ", " + std::to_string(cfg.get<int64_t>("training.steps")) + " steps");
    gm::fit_classifier(net, train, cfg.get<int64_t>("training.steps"), cfg.get<int64_t>("training.batch_size"),
                       cfg.get<double>("training.lr"), static_cast<uint64_t>(cfg.get<int64_t>("seed")), ex.device(),
                       cfg.get<int64_t>("training.log_every"),
                       [&](int64_t step, double loss) { run.log("step " + std::to_string(step) + " loss " + std::to_string(loss)); });
    const double acc = gm::classifier_accuracy(net, test.images, test.labels, ex.device());
    run.log("test accuracy " + std::to_string(acc) + " on " + std::to_string(test.size()) + " images");
    run.write("accuracy.json", "{\"test_accuracy\": " + std::to_string(acc) + ", \"test_images\": " + std::to_string(test.size()) + "}\n");
    gm::save_classifier(out, net);
    run.log("saved " + out.string());
  });
}
