// edgekit example app: classify one image with a Paddle Lite naive-buffer model (.nb).
//
//   edgekit_lite_classify --model model.nb --image photo.jpg
//       [--preprocess preprocess.txt] [--labels labels.txt]
//       [--threads 1] [--topk 5] [--repeats 1]
//       [--input-raw x.bin] [--output-raw y.bin]
//
// Preprocessing (PaddleClas eval transforms) is read at run time from
// preprocess.txt, which edgekit writes next to this file from the bundle's
// manifest, so one binary serves every bundle:
//   decode to RGB -> resize the short side (bilinear) -> center crop ->
//   x * scale -> (x - mean) / std per channel -> NCHW float32.
// --input-raw skips all of that and feeds a float32 NCHW tensor from a file
// (native byte order), --output-raw writes the raw float32 output: together
// they let a host compare this device's numbers with its own.
//
// Without OpenCV (EDGEKIT_WITH_OPENCV off) only binary PPM (P6) images are
// read: `convert photo.jpg photo.ppm`. Resizing is done here in both builds.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "paddle_api.h"

#ifdef EDGEKIT_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace {

using paddle::lite_api::MobileConfig;
using paddle::lite_api::PaddlePredictor;

struct Preprocess {
  int resize_short = 256;
  int crop = 224;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
  float scale = 1.0f / 255.0f;
  std::string channel_order = "RGB";
};

struct Image {  // 8-bit RGB, row-major HWC
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

[[noreturn]] void Fail(const std::string& message) { throw std::runtime_error(message); }

// "key value..." lines; '#' starts a comment. Unknown keys are errors so a
// typo cannot silently fall back to a default.
Preprocess ReadPreprocess(const std::string& path) {
  Preprocess pp;
  std::ifstream in(path);
  if (!in) Fail("cannot open preprocess file " + path);
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream fields(line);
    std::string key;
    if (!(fields >> key)) continue;
    bool ok = true;
    if (key == "resize_short") {
      ok = static_cast<bool>(fields >> pp.resize_short);
    } else if (key == "crop") {
      ok = static_cast<bool>(fields >> pp.crop);
    } else if (key == "mean") {
      ok = static_cast<bool>(fields >> pp.mean[0] >> pp.mean[1] >> pp.mean[2]);
    } else if (key == "std") {
      ok = static_cast<bool>(fields >> pp.std[0] >> pp.std[1] >> pp.std[2]);
    } else if (key == "scale") {
      ok = static_cast<bool>(fields >> pp.scale);
    } else if (key == "channel_order") {
      ok = static_cast<bool>(fields >> pp.channel_order) &&
           (pp.channel_order == "RGB" || pp.channel_order == "BGR");
    } else if (key == "interpolation" || key == "layout") {
      std::string value;
      ok = static_cast<bool>(fields >> value) &&
           value == (key == "interpolation" ? "bilinear" : "NCHW");  // all this app does
    } else {
      Fail("unknown key '" + key + "' in " + path);
    }
    if (!ok) Fail("bad value for '" + key + "' in " + path + ": " + line);
  }
  if (pp.resize_short < pp.crop || pp.crop <= 0) Fail("preprocess: need 0 < crop <= resize_short");
  return pp;
}

std::vector<std::string> ReadLabels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  return labels;
}

#ifdef EDGEKIT_WITH_OPENCV
Image LoadImage(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) Fail("cannot decode image " + path);
  Image image;
  image.width = bgr.cols;
  image.height = bgr.rows;
  image.pixels.resize(static_cast<size_t>(bgr.cols) * bgr.rows * 3);
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* row = bgr.ptr<uint8_t>(y);
    uint8_t* out = &image.pixels[static_cast<size_t>(y) * bgr.cols * 3];
    for (int x = 0; x < bgr.cols; ++x) {  // OpenCV decodes BGR; the models want RGB
      out[3 * x + 0] = row[3 * x + 2];
      out[3 * x + 1] = row[3 * x + 1];
      out[3 * x + 2] = row[3 * x + 0];
    }
  }
  return image;
}
#else
// Binary PPM (P6, maxval 255): header tokens separated by whitespace, '#' comments.
Image LoadImage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot open image " + path);
  auto token = [&in]() {
    std::string text;
    char c;
    while (in.get(c)) {
      if (c == '#') {
        std::string comment;
        std::getline(in, comment);
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        if (!text.empty()) break;
      } else {
        text += c;
      }
    }
    return text;
  };
  if (token() != "P6") Fail(path + " is not a binary PPM (P6); build with OpenCV for JPEG/PNG");
  Image image;
  image.width = std::atoi(token().c_str());
  image.height = std::atoi(token().c_str());
  if (std::atoi(token().c_str()) != 255 || image.width <= 0 || image.height <= 0)
    Fail(path + ": only 8-bit PPM images are supported");
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  in.read(reinterpret_cast<char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
  if (!in) Fail(path + ": truncated PPM");
  return image;
}
#endif

// Bilinear resize with pixel centres at +0.5, like OpenCV's INTER_LINEAR
// (which rounds its weights to 11 bits: results may differ by one grey level).
Image ResizeBilinear(const Image& src, int width, int height) {
  Image dst;
  dst.width = width;
  dst.height = height;
  dst.pixels.resize(static_cast<size_t>(width) * height * 3);
  const double sx = static_cast<double>(src.width) / width;
  const double sy = static_cast<double>(src.height) / height;
  auto source_index = [](int d, double s, int size, int* i0, int* i1, float* w1) {
    double f = (d + 0.5) * s - 0.5;
    int i = static_cast<int>(std::floor(f));
    float frac = static_cast<float>(f - i);
    if (i < 0) { i = 0; frac = 0.f; }
    if (i >= size - 1) { i = size - 1; frac = 0.f; }
    *i0 = i;
    *i1 = std::min(i + 1, size - 1);
    *w1 = frac;
  };
  std::vector<int> x0(width), x1(width);
  std::vector<float> wx(width);
  for (int x = 0; x < width; ++x) source_index(x, sx, src.width, &x0[x], &x1[x], &wx[x]);
  for (int y = 0; y < height; ++y) {
    int y0, y1;
    float wy;
    source_index(y, sy, src.height, &y0, &y1, &wy);
    const uint8_t* r0 = &src.pixels[static_cast<size_t>(y0) * src.width * 3];
    const uint8_t* r1 = &src.pixels[static_cast<size_t>(y1) * src.width * 3];
    uint8_t* out = &dst.pixels[static_cast<size_t>(y) * width * 3];
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        float top = r0[3 * x0[x] + c] * (1.f - wx[x]) + r0[3 * x1[x] + c] * wx[x];
        float bottom = r1[3 * x0[x] + c] * (1.f - wx[x]) + r1[3 * x1[x] + c] * wx[x];
        float value = top * (1.f - wy) + bottom * wy;
        out[3 * x + c] = static_cast<uint8_t>(std::min(255.f, std::max(0.f, std::nearbyint(value))));
      }
    }
  }
  return dst;
}

// RGB image -> the model input, NCHW float32 of shape [1, 3, crop, crop].
std::vector<float> ToInputTensor(const Image& image, const Preprocess& pp) {
  // Short side to resize_short, the long side scaled alike and rounded half to
  // even (nearbyint), as PaddleClas' Python round() does.
  double ratio = static_cast<double>(pp.resize_short) / std::min(image.width, image.height);
  int width = static_cast<int>(std::nearbyint(image.width * ratio));
  int height = static_cast<int>(std::nearbyint(image.height * ratio));
  Image resized = ResizeBilinear(image, width, height);
  int top = (height - pp.crop) / 2;
  int left = (width - pp.crop) / 2;
  const size_t plane = static_cast<size_t>(pp.crop) * pp.crop;
  std::vector<float> tensor(3 * plane);
  for (int c = 0; c < 3; ++c) {
    int source_channel = pp.channel_order == "BGR" ? 2 - c : c;
    for (int y = 0; y < pp.crop; ++y) {
      const uint8_t* row = &resized.pixels[(static_cast<size_t>(top + y) * width + left) * 3];
      float* out = &tensor[c * plane + static_cast<size_t>(y) * pp.crop];
      for (int x = 0; x < pp.crop; ++x) {
        out[x] = (row[3 * x + source_channel] * pp.scale - pp.mean[c]) / pp.std[c];
      }
    }
  }
  return tensor;
}

std::vector<float> ReadRaw(const std::string& path, size_t count) {
  std::vector<float> values(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (!in) Fail("cannot read " + std::to_string(count) + " float32 values from " + path);
  return values;
}

std::map<std::string, std::string> ParseArgs(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"preprocess", "preprocess.txt"}, {"labels", "labels.txt"}, {"threads", "1"},
      {"topk", "5"}, {"repeats", "1"}};
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0 || i + 1 >= argc) Fail("expected --flag value, got '" + flag + "'");
    args[flag.substr(2)] = argv[++i];
  }
  if (!args.count("model") || (!args.count("image") && !args.count("input-raw")))
    Fail("usage: edgekit_lite_classify --model model.nb --image photo.jpg [--preprocess preprocess.txt] "
         "[--labels labels.txt] [--threads N] [--topk K] [--repeats R] [--input-raw x.bin] "
         "[--output-raw y.bin]");
  return args;
}

int Run(int argc, char** argv) {
  std::map<std::string, std::string> args = ParseArgs(argc, argv);
  Preprocess pp = ReadPreprocess(args["preprocess"]);
  const int crop = pp.crop;
  std::vector<float> input = args.count("input-raw")
                                 ? ReadRaw(args["input-raw"], 3 * static_cast<size_t>(crop) * crop)
                                 : ToInputTensor(LoadImage(args["image"]), pp);

  MobileConfig config;
  config.set_model_from_file(args["model"]);
  config.set_threads(std::atoi(args["threads"].c_str()));
  config.set_power_mode(paddle::lite_api::LITE_POWER_HIGH);
  std::shared_ptr<PaddlePredictor> predictor =
      paddle::lite_api::CreatePaddlePredictor<MobileConfig>(config);

  std::unique_ptr<paddle::lite_api::Tensor> input_tensor = predictor->GetInput(0);
  input_tensor->Resize({1, 3, crop, crop});
  std::copy(input.begin(), input.end(), input_tensor->mutable_data<float>());

  const int repeats = std::max(1, std::atoi(args["repeats"].c_str()));
  std::vector<double> times_ms;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    predictor->Run();
    times_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }

  std::unique_ptr<const paddle::lite_api::Tensor> output = predictor->GetOutput(0);
  paddle::lite_api::shape_t shape = output->shape();
  const int64_t count = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  const float* scores = output->data<float>();
  if (args.count("output-raw")) {
    std::ofstream out(args["output-raw"], std::ios::binary);
    out.write(reinterpret_cast<const char*>(scores), static_cast<std::streamsize>(count * sizeof(float)));
  }

  std::vector<std::string> labels = ReadLabels(args["labels"]);
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  const int64_t k = std::min<int64_t>(count, std::max(1, std::atoi(args["topk"].c_str())));
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [scores](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::sort(times_ms.begin(), times_ms.end());
  std::printf("model %s, Paddle Lite %s, %d thread(s), median latency %.2f ms over %d run(s)\n",
              args["model"].c_str(), predictor->GetVersion().c_str(), std::atoi(args["threads"].c_str()),
              times_ms[times_ms.size() / 2], repeats);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t id = order[i];
    const std::string label = id < static_cast<int64_t>(labels.size()) ? labels[id] : "";
    std::printf("top-%lld  class %lld  score %.6f  %s\n", static_cast<long long>(i + 1),
                static_cast<long long>(id), scores[id], label.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "edgekit_lite_classify: %s\n", error.what());
    return 2;
  }
}
