// The CUDA backend class, for code that also talks to the CUDA runtime (the backend itself,
// benchmarks, device tests). Everything else reaches it through make_cuda_backend
// (cuda_factory.h).
//
// Device tensors (one allocation per kind, layer outermost, each layer laid out as the CPU
// backend's but for the elements inside an SSM head, which are in ssm_layout.h's order: read
// and write them through read_state/write_state, which permute, never by copying bytes):
//   conv    [layers, state_rows, conv_dim, conv_cols]                bf16
//   ssm     [layers, state_rows, HV, K x V (ssm_layout.h)]           fp32 or bf16
//   payload [layers, payload_slots, payload_tokens] tokens  (core/numerics/payload_token.h)
//   outputs [tasks, tokens, layers, HV, V]                           bf16 (last verify)
// All work is enqueued on one stream owned by the backend; reads synchronise with it.
#pragma once

#include <cuda_runtime_api.h>

#include <span>
#include <vector>

#include "backends/cuda/cuda_factory.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"
#include "backends/sequence_job.h"

namespace specstate::cuda {

// One step launch (launch_step) whose job tables are already on the device.
struct StepCall {
  DeviceBuffer<SeqJob> jobs;      // [job_count]
  DeviceBuffer<SeqWrite> writes;  // full-state writes, indexed by the jobs
  DeviceBuffer<uint32_t> steps;   // packed recurrence steps of tree jobs, indexed by the jobs
  bool tree = false;              // some job is a tree
  bool sparse_stores = false;     // some job stores_sparsely (kernels.h)
  int32_t job_count = 0;
  int32_t max_tokens = 0;  // pending + new tokens of the longest job, <= kStepMaxTokens
                           // (kStepMaxTreeTokens with a tree)
};

// The launches of one primitive call: one, or for prefills longer than kStepMaxTokens one per
// kStepMaxTokens tokens, the state carried between them.
struct PreparedSequence {
  std::vector<StepCall> calls;
  int32_t job_count = 0;
  int32_t output_tokens = 0;  // verify: tokens per task in the outputs; 0: no outputs
  bool carries = false;       // the calls pass state through the backend's carry buffers
  bool carries_conv = false;  // ... conv windows too (chunked prefills; a tree's base is SSM only)
};

struct PreparedCopy {
  DeviceBuffer<CopyJob> jobs;  // [job_count]
  int32_t job_count = 0;
};

class CudaBackend final : public StateBackend {
 public:
  CudaBackend(const PoolShape& shape, uint64_t seed);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  AllocationReport allocations() const override;

  // The launches the primitives make, split into building the job tables (uploaded to `out`)
  // and enqueueing the kernels on stream(), so a benchmark can time exactly the kernels the
  // primitives run. The prepare_* functions do not check their arguments: check them through
  // the public primitives first.
  void prepare_prefill(std::span<const PrefillTask> tasks, PreparedSequence& out);
  void prepare_verify(VerifyMode mode, std::span<const VerifyTask> tasks, PreparedSequence& out);
  void prepare_replay(std::span<const ReplayTask> tasks, PreparedSequence& out);
  // The one flattening of backend-neutral jobs (backends/sequence_job.h) into the device table.
  void prepare(std::span<const SequenceJob> jobs, int32_t output_tokens, PreparedSequence& out);
  void prepare_copy(std::span<const RowCopy> copies, PreparedCopy& out);
  void launch(const PreparedSequence& prepared);
  void launch(const PreparedCopy& prepared);

  cudaStream_t stream() const { return stream_; }
  const DevicePool& device_pool() const { return pool_; }

 private:
  void do_prefill(std::span<const PrefillTask> tasks) override;
  void do_verify(VerifyMode mode, std::span<const VerifyTask> tasks) override;
  void do_replay(std::span<const ReplayTask> tasks) override;
  void do_copy_rows(std::span<const RowCopy> copies) override;
  void do_gather_payload(std::span<const PayloadGather> gathers) override;
  void do_write_state(int32_t row, const RowBytes& state) override;
  void do_fill_row(int32_t row, uint8_t byte) override;
  void do_set_accepted(std::span<const AcceptedCount> counts) override;
  int32_t do_accepted(int32_t req_row) const override;
  RowBytes do_read(const StateLoc& loc, int32_t first_col, int32_t cols) const override;
  uint64_t do_digest(const StateLoc& loc, int32_t first_col, int32_t cols) const override;
  VerifyOutputs do_read_outputs() const override;
  std::vector<uint8_t> do_read_payload(int32_t slot) const override;

  void upload(PreparedSequence& out, const std::vector<SeqJob>& jobs,
              const std::vector<SeqWrite>& writes, const std::vector<uint32_t>& steps);
  void upload_call(StepCall& call, const std::vector<SeqJob>& jobs,
                   const std::vector<SeqWrite>& writes, const std::vector<uint32_t>& steps = {});
  int64_t output_elements(int32_t tasks, int32_t tokens) const;
  uint16_t* conv_row(int layer, int32_t row) const;  // [conv_dim, conv_cols] bf16
  char* ssm_row(int layer, int32_t row) const;       // [HV, K x V] pool dtype (ssm_layout.h)

  cudaStream_t stream_ = nullptr;
  DevicePool pool_;
  DeviceBuffer<uint16_t> conv_;              // [layers, rows, conv_dim, conv_cols] bf16
  DeviceBuffer<char> ssm_;                   // [layers, rows, HV, K x V] (ssm_layout.h)
  DeviceBuffer<uint8_t> payload_;            // [layers, slots, tokens] tokens (payload_token.h)
  DeviceBuffer<float> conv_taps_;            // [layers, conv_dim, W] fp32
  DeviceBuffer<float> a_log_;                // [layers, HV] fp32
  DeviceBuffer<float> dt_bias_;              // [layers, HV] fp32
  DeviceBuffer<int32_t> layer_ids_;          // [layers]: model index of each layer held
  DeviceBuffer<int32_t> accepted_;           // [request rows]: the accepted counts guards read
  DeviceBuffer<AcceptedCount> accept_jobs_;  // the entries of the last set_accepted
  DeviceBuffer<uint16_t> outputs_;           // [tasks, tokens, layers, HV, V] bf16
  DeviceBuffer<float> carry_ssm_;            // [jobs, layers, HV, K x V] fp32: prefills, trees
  DeviceBuffer<uint16_t> carry_conv_;        // [jobs, layers, conv_dim, W-1] bf16: long prefills
  DeviceBuffer<float> step_qk_;              // [jobs, layers, tokens, H, 2, K] fp32
  DeviceBuffer<uint16_t> step_v_;            // [jobs, layers, tokens, HV, V] bf16
  DeviceBuffer<float> step_gates_;           // [jobs, layers, tokens, HV, 2] fp32
  mutable DeviceBuffer<unsigned long long> digest_;  // [1]
  PreparedSequence call_;                            // job tables of the primitive being run
  PreparedCopy copy_call_;
  DeviceBuffer<GatherJob> gather_jobs_;
  int32_t output_tasks_ = 0, output_tokens_ = 0;
};

}  // namespace specstate::cuda
