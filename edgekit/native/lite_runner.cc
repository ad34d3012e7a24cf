// edgekit's native Paddle Lite runner: runs a .nb with the light API, no Python needed on the device.
//
//   edgekit-lite-runner MODEL.nb info                     one JSON line: Lite version, input/output names
//   edgekit-lite-runner MODEL.nb serve [THREADS]          framed float32 batches on stdin -> outputs on stdout
//   edgekit-lite-runner MODEL.nb time N C H W WARMUP ITERS [THREADS [SECONDS]]
//                                                         one JSON line: per-iteration milliseconds, at
//                                                         least ITERS of them and at least SECONDS in all
//
// serve reads stdin to its end, so it also serves a file of requests (`serve 1 < in > out`) where a
// transport cannot stream (adb).
// serve frames (little-endian): request  "EKR1" u32 n, c, h, w, then n*c*h*w float32 (n == 0: exit);
//                               response "EKO1" u32 status (0: ok), u32 rows, u32 cols, f64 seconds,
//                               then rows*cols float32; status 1: u32 length + message instead.
// The host decodes, preprocesses and computes every metric; this program only moves tensors, so its
// numbers are the Lite kernels' numbers and nothing else.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "paddle_api.h"

namespace lite = paddle::lite_api;

namespace {

bool read_exact(void* buffer, size_t bytes) {
  char* at = static_cast<char*>(buffer);
  while (bytes > 0) {
    size_t got = fread(at, 1, bytes, stdin);
    if (got == 0) return false;
    at += got;
    bytes -= got;
  }
  return true;
}

void write_exact(const void* buffer, size_t bytes) {
  if (fwrite(buffer, 1, bytes, stdout) != bytes) std::exit(3);  // the host went away
}

std::shared_ptr<lite::PaddlePredictor> open_model(const char* model, int threads) {
  lite::MobileConfig config;
  config.set_model_from_file(model);
  config.set_threads(threads);
  config.set_power_mode(lite::LITE_POWER_NO_BIND);
  return lite::CreatePaddlePredictor<lite::MobileConfig>(config);
}

// Run one batch; returns the output shape (rows, cols) and copies the output into `out`.
void run_batch(lite::PaddlePredictor* predictor, const std::vector<int64_t>& shape, const float* data,
               std::vector<float>* out, uint32_t* rows, uint32_t* cols) {
  std::unique_ptr<lite::Tensor> input(predictor->GetInput(0));
  input->Resize(shape);
  int64_t count = shape[0] * shape[1] * shape[2] * shape[3];
  std::memcpy(input->mutable_data<float>(), data, sizeof(float) * count);
  predictor->Run();
  std::unique_ptr<const lite::Tensor> output(predictor->GetOutput(0));
  std::vector<int64_t> dims = output->shape();
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  *rows = dims.empty() ? 0 : static_cast<uint32_t>(dims[0]);
  *cols = *rows ? static_cast<uint32_t>(total / *rows) : 0;
  out->assign(output->data<float>(), output->data<float>() + total);
}

std::string json_names(const std::vector<std::string>& names) {
  std::string text = "[";
  for (size_t i = 0; i < names.size(); ++i) text += (i ? ",\"" : "\"") + names[i] + "\"";
  return text + "]";
}

int info(const char* model) {
  auto predictor = open_model(model, 1);
  printf("{\"lite_version\": \"%s\", \"inputs\": %s, \"outputs\": %s}\n", predictor->GetVersion().c_str(),
         json_names(predictor->GetInputNames()).c_str(), json_names(predictor->GetOutputNames()).c_str());
  return 0;
}

int serve(const char* model, int threads) {
  auto predictor = open_model(model, threads);
  std::vector<float> batch, out;
  for (;;) {
    char magic[4];
    uint32_t dims[4];
    if (!read_exact(magic, 4)) return 0;  // the host closed the stream: done
    if (std::memcmp(magic, "EKR1", 4) != 0 || !read_exact(dims, sizeof dims)) return 2;
    if (dims[0] == 0) return 0;
    std::vector<int64_t> shape(dims, dims + 4);
    batch.resize(static_cast<size_t>(dims[0]) * dims[1] * dims[2] * dims[3]);
    if (!read_exact(batch.data(), batch.size() * sizeof(float))) return 2;
    auto start = std::chrono::steady_clock::now();
    uint32_t rows = 0, cols = 0;
    run_batch(predictor.get(), shape, batch.data(), &out, &rows, &cols);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint32_t status = 0;
    write_exact("EKO1", 4);
    write_exact(&status, 4);
    write_exact(&rows, 4);
    write_exact(&cols, 4);
    write_exact(&seconds, 8);
    write_exact(out.data(), out.size() * sizeof(float));
    fflush(stdout);
  }
}

int time_model(const char* model, char** args, int threads, double min_seconds) {
  std::vector<int64_t> shape;
  for (int i = 0; i < 4; ++i) shape.push_back(std::atoll(args[i]));
  int warmup = std::atoi(args[4]), iterations = std::atoi(args[5]);
  auto predictor = open_model(model, threads);
  // A fixed, non-trivial input: timing must not depend on data, but zeros can take shortcuts.
  std::vector<float> batch(static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]));
  for (size_t i = 0; i < batch.size(); ++i) batch[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.f - 1.f;
  std::vector<float> out;
  uint32_t rows, cols;
  for (int i = 0; i < warmup; ++i) run_batch(predictor.get(), shape, batch.data(), &out, &rows, &cols);
  printf("{\"lite_version\": \"%s\", \"threads\": %d, \"ms\": [", predictor->GetVersion().c_str(), threads);
  double spent_ms = 0;
  for (int i = 0; i < iterations || spent_ms < min_seconds * 1000; ++i) {
    auto start = std::chrono::steady_clock::now();
    run_batch(predictor.get(), shape, batch.data(), &out, &rows, &cols);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    spent_ms += ms;
    printf(i ? ", %.4f" : "%.4f", ms);
  }
  printf("]}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[2], "info") == 0) return info(argv[1]);
  if (argc >= 3 && std::strcmp(argv[2], "serve") == 0) return serve(argv[1], argc > 3 ? std::atoi(argv[3]) : 1);
  if (argc >= 9 && std::strcmp(argv[2], "time") == 0)
    return time_model(argv[1], argv + 3, argc > 9 ? std::atoi(argv[9]) : 1, argc > 10 ? std::atof(argv[10]) : 0);
  fprintf(stderr,
          "usage: %s MODEL.nb info | serve [THREADS] | time N C H W WARMUP ITERS [THREADS [SECONDS]]\n", argv[0]);
  return 2;
}
