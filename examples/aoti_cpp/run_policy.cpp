// Runs an sb3_rtx policy exported with export_aoti (a .pt2 AOTInductor package) from C++, without
// Python: libtorch's AOTIModelPackageLoader loads the package, and each call of run() is one acting
// step, (*observations, episode_start, *state) -> (action, value, *next_state), the state fed back.
//
//   run_policy policy.pt2 steps.bin N_OBSERVATION_INPUTS N_STATE_INPUTS [--time ROUNDS]
//
// steps.bin holds tensors one after another, each as: int64 ndim, int64 sizes[ndim], int64 dtype
// (0 float32, 1 bool, 2 int64, 3 uint8), then its bytes: first the initial state (zeros, one tensor
// per state input), then for every step the observation inputs and episode_start. For every step
// it prints one line: the actions, then the values, space-separated. With --time it acts instead on
// the file's first step's inputs over and over (the state fed back), 100 steps to warm up and then
// ROUNDS runs of 10, and prints the median milliseconds per step: what one step costs natively
// (threads: OMP_NUM_THREADS). Build it against the libtorch that pip installs (the docs page
// "Export" has the command).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

namespace {

torch::Tensor read_tensor(std::ifstream& in) {
  auto read_int = [&in]() {
    int64_t value = 0;
    in.read(reinterpret_cast<char*>(&value), sizeof(value));
    if (!in) throw std::runtime_error("steps file ended early");
    return value;
  };
  const int64_t ndim = read_int();
  std::vector<int64_t> sizes(ndim);
  for (auto& size : sizes) size = read_int();
  const int64_t code = read_int();
  const torch::ScalarType dtypes[] = {torch::kFloat32, torch::kBool, torch::kInt64, torch::kUInt8};
  if (code < 0 || code > 3) throw std::runtime_error("unknown dtype code " + std::to_string(code));
  torch::Tensor tensor = torch::empty(sizes, torch::TensorOptions().dtype(dtypes[code]));
  in.read(reinterpret_cast<char*>(tensor.data_ptr()), tensor.nbytes());
  if (!in) throw std::runtime_error("steps file ended inside a tensor");
  return tensor;
}

void print_flat(const torch::Tensor& tensor) {
  const torch::Tensor flat = tensor.to(torch::kFloat64).flatten().contiguous();
  const double* data = flat.data_ptr<double>();
  for (int64_t i = 0; i < flat.numel(); ++i) std::cout << data[i] << ' ';
}

// One step: (*observations, episode_start, *state) -> (action, value, *next_state); the state is
// replaced by next_state.
std::vector<torch::Tensor> act(torch::inductor::AOTIModelPackageLoader& policy, std::vector<torch::Tensor> inputs,
                               std::vector<torch::Tensor>& state) {
  inputs.insert(inputs.end(), state.begin(), state.end());
  std::vector<torch::Tensor> outputs = policy.run(inputs);
  state.assign(outputs.begin() + 2, outputs.end());
  return outputs;
}

double median_step_ms(torch::inductor::AOTIModelPackageLoader& policy, const std::vector<torch::Tensor>& inputs,
                      std::vector<torch::Tensor>& state, int rounds) {
  for (int i = 0; i < 100; ++i) act(policy, inputs, state);
  std::vector<double> ms;
  for (int round = 0; round < rounds; ++round) {
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) act(policy, inputs, state);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count() / 10);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool timing = argc == 7 && std::string(argv[5]) == "--time";
  if (argc != 5 && !timing) {
    std::cerr << "usage: run_policy policy.pt2 steps.bin N_OBSERVATION_INPUTS N_STATE_INPUTS [--time ROUNDS]\n";
    return 2;
  }
  torch::inductor::AOTIModelPackageLoader policy(argv[1]);
  std::ifstream in(argv[2], std::ios::binary);
  const int n_observations = std::stoi(argv[3]);
  const int n_state = std::stoi(argv[4]);
  std::vector<torch::Tensor> state;
  for (int i = 0; i < n_state; ++i) state.push_back(read_tensor(in));
  std::cout.precision(9);
  while (in.peek() != std::ifstream::traits_type::eof()) {
    std::vector<torch::Tensor> inputs;
    for (int i = 0; i < n_observations + 1; ++i) inputs.push_back(read_tensor(in));  // + episode_start
    if (timing) {
      const int rounds = std::stoi(argv[6]);
      if (rounds < 1) throw std::runtime_error("--time needs at least one round");
      std::cout << median_step_ms(policy, inputs, state, rounds) << '\n';
      return 0;
    }
    std::vector<torch::Tensor> outputs = act(policy, inputs, state);
    print_flat(outputs[0]);
    print_flat(outputs[1]);
    std::cout << '\n';
  }
  return 0;
}
