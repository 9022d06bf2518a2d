#include "backends/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_factory.h"
#include "backends/cuda/ssm_layout.h"
#include "backends/sequence_job.h"
#include "core/errors.h"

namespace specstate {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error here
    return 0;
  }
  return count;
}

int64_t cuda_free_bytes() {
  size_t free_bytes = 0, total_bytes = 0;
  if (cuda_device_count() == 0 || cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess)
    return -1;
  return int64_t(free_bytes);
}

void check_cuda_geometry(const ModelGeometry& g) {
  switch (g.recurrence) {  // the step kernels (step_kernels.cu) run both
    case RecurrenceKind::kGatedDeltaNet:
    case RecurrenceKind::kKimiDeltaAttention:
      break;
  }
  if (!cuda::step_kernels_support(g.head_k_dim, g.head_v_dim, g.conv_width)) {
    throw InputError("backend 'cuda': unsupported geometry (needs K = V = 16 or 128 and W = 4)");
  }
}

void check_cuda_step_tokens(const ModelGeometry& g, int32_t tokens) {
  if (cuda_device_count() == 0) return;  // no device: no lane runs here to refuse
  const size_t need = cuda::step_shared_bytes(g.head_k_dim, g.v_heads_per_k_head(), tokens);
  const size_t have = cuda::step_shared_limit();
  if (need > have) {
    throw InputError("backend 'cuda': a step of " + std::to_string(tokens) +
                     " tokens (a verify's tokens or tree nodes after the longest pending "
                     "replay) needs " +
                     std::to_string(need) +
                     " bytes of shared memory per block for this geometry, more than the " +
                     std::to_string(have) +
                     " this device allows (fewer tree nodes, or a "
                     "shorter ring history)");
  }
}

std::unique_ptr<StateBackend> make_cuda_backend(const PoolShape& shape, uint64_t seed) {
  return std::make_unique<cuda::CudaBackend>(shape, seed);
}

void cuda_synchronize_checked() {
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaGetLastError());
}

namespace cuda {

void* device_alloc(size_t bytes) {
  void* ptr = nullptr;
  if (bytes > 0) CUDA_CHECK(cudaMalloc(&ptr, bytes));
  return ptr;
}

void device_free(void* ptr) {
  if (ptr) CUDA_CHECK(cudaFree(ptr));
}

namespace {

// One layer's SSM row (HV heads of K x K) between the canonical row-major order and the device
// layout (ssm_layout.h), a column pair at a time: a pair is adjacent in both orders.
enum class Toward { kDevice, kCanonical };
void permute_ssm_row(const char* src, char* dst, const ModelGeometry& g, int elem_bytes,
                     Toward toward) {
  const int K = g.head_k_dim;
  const int64_t head = int64_t{K} * K;
  for (int hv = 0; hv < g.num_v_heads; ++hv) {
    for (int k = 0; k < K; ++k) {
      for (int v = 0; v < K; v += 2) {
        const int64_t canonical = hv * head + int64_t{k} * K + v;
        const int64_t device = hv * head + cuda::ssm_element_offset(k, v, K, elem_bytes);
        const int64_t from = toward == Toward::kDevice ? canonical : device;
        const int64_t to = toward == Toward::kDevice ? device : canonical;
        std::memcpy(dst + to * elem_bytes, src + from * elem_bytes, size_t(2 * elem_bytes));
      }
    }
  }
}

SeqJob blank_job() {
  SeqJob job;
  std::fill(std::begin(job.ssm_only_rows), std::end(job.ssm_only_rows), kNoRow);
  return job;
}

void set_from(SeqJob& job, const StateLoc& from) {
  job.from_ssm_row = from.ssm_row;
  job.from_conv_row = from.conv_row;
  job.from_conv_offset = from.conv_offset;
}

}  // namespace

CudaBackend::CudaBackend(const PoolShape& shape, uint64_t seed) : StateBackend(shape, seed) {
  const ModelGeometry& g = shape.geometry;
  check_cuda_geometry(g);
  // K = V = 16 or 128: a head is a multiple of 16 bytes in either dtype.
  SPECSTATE_ASSERT(shape.ssm_row_bytes() % 16 == 0, "SSM rows are whole 16-byte vectors");
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  pool_.layers = g.layers;
  pool_.rows = shape.state_rows;
  pool_.conv_cols = shape.conv_cols;
  pool_.slots = shape.payload_slots;
  pool_.payload_tokens = shape.payload_tokens;
  pool_.token = shape.payload_token();
  pool_.H = g.num_k_heads;
  pool_.HV = g.num_v_heads;
  pool_.K = g.head_k_dim;
  pool_.V = g.head_v_dim;
  pool_.W = g.conv_width;
  pool_.A = g.decay_values_per_head();
  pool_.ssm_bf16 = shape.ssm_dtype == SsmDtype::kBF16;
  pool_.q_scale = g.query_scale();
  pool_.seed = seed;
  pool_.model = g.rank_index();

  conv_.resize_discard(shape.conv_bytes() / 2);
  ssm_.resize_discard(shape.ssm_bytes());
  payload_.resize_discard(shape.payload_bytes());
  conv_taps_.resize_discard(size_t(g.layers) * g.conv_dim() * g.conv_width);
  a_log_.resize_discard(size_t(g.layers) * g.num_v_heads);
  dt_bias_.resize_discard(size_t(g.layers) * g.num_v_heads * pool_.A);
  layer_ids_.resize_discard(size_t(g.layers));
  accepted_.resize_discard(std::max<size_t>(size_t(shape.request_rows), 1));
  digest_.resize_discard(1);
  pool_.conv = conv_.data();
  pool_.ssm = ssm_.data();
  pool_.payload = payload_.data();
  pool_.conv_taps = conv_taps_.data();
  pool_.a_log = a_log_.data();
  pool_.dt_bias = dt_bias_.data();
  pool_.layer_ids = layer_ids_.data();
  pool_.accepted = accepted_.data();

  // The CPU backend starts from zeros; so does this one.
  CUDA_CHECK(cudaMemsetAsync(conv_.data(), 0, conv_.bytes(), stream_));
  CUDA_CHECK(cudaMemsetAsync(ssm_.data(), 0, ssm_.bytes(), stream_));
  if (payload_.bytes()) CUDA_CHECK(cudaMemsetAsync(payload_.data(), 0, payload_.bytes(), stream_));
  CUDA_CHECK(cudaMemsetAsync(accepted_.data(), 0, accepted_.bytes(), stream_));
  std::vector<int32_t> layer_ids(g.layers);
  for (int l = 0; l < g.layers; ++l)
    layer_ids[l] = g.layer_id(l);
  CUDA_CHECK(cudaMemcpyAsync(layer_ids_.data(), layer_ids.data(),
                             layer_ids.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  launch_generate_params(pool_, conv_taps_.data(), a_log_.data(), dt_bias_.data(), stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaBackend::~CudaBackend() {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  CUDA_CHECK(cudaStreamDestroy(stream_));
}

AllocationReport CudaBackend::allocations() const {
  return {int64_t(conv_.bytes()), int64_t(ssm_.bytes()), int64_t(payload_.bytes())};
}

uint16_t* CudaBackend::conv_row(int layer, int32_t row) const {
  return conv_.data() +
         (int64_t{layer} * pool_.rows + row) * shape().geometry.conv_dim() * pool_.conv_cols;
}

char* CudaBackend::ssm_row(int layer, int32_t row) const {
  return ssm_.data() + (int64_t{layer} * pool_.rows + row) * shape().ssm_row_bytes();
}

int64_t CudaBackend::output_elements(int32_t tasks, int32_t tokens) const {
  const ModelGeometry& g = shape().geometry;
  return int64_t{tasks} * tokens * g.layers * g.num_v_heads * g.head_v_dim;
}

namespace {

int32_t max_tokens_of(std::span<const SeqJob> jobs) {
  int32_t n = 0;
  for (const SeqJob& j : jobs) {
    if (j.active) n = std::max(n, j.pending_count + j.new_count);
  }
  return n;
}

// Launch `chunk` of a call whose jobs are longer than one launch takes: new tokens
// [chunk * kStepMaxTokens, +kStepMaxTokens) of every job, the state carried from the launch
// before and to the one after, the writes that fall inside, renumbered.
void chunk_jobs(std::span<const SeqJob> jobs, std::span<const SeqWrite> writes, int32_t chunk,
                std::vector<SeqJob>& out_jobs, std::vector<SeqWrite>& out_writes) {
  const int32_t first = chunk * kStepMaxTokens;
  for (SeqJob job : jobs) {
    SPECSTATE_ASSERT(job.pending_count == 0 && job.in_payload_slot == kNoRow &&
                         job.payload_out_slot == kNoRow && !job.rewrite_wide_conv,
                     "only prefills run longer than one step launch");
    const int32_t n = std::clamp(job.new_count - first, 0, kStepMaxTokens);
    const SeqJob whole = job;
    job.active = whole.active && n > 0;
    job.new_count = n;
    job.first_position = whole.first_position + first;
    job.from_carry = chunk > 0;
    job.to_carry = first + n < whole.new_count;
    job.first_write = int32_t(out_writes.size());
    for (int w = 0; w < whole.write_count; ++w) {
      const SeqWrite wr = writes[whole.first_write + w];
      if (wr.after_tokens > first && wr.after_tokens <= first + n)
        out_writes.push_back({wr.after_tokens - first, wr.row});
    }
    job.write_count = int32_t(out_writes.size()) - job.first_write;
    out_jobs.push_back(job);
  }
}

}  // namespace

void CudaBackend::upload_call(StepCall& call, const std::vector<SeqJob>& jobs,
                              const std::vector<SeqWrite>& writes,
                              const std::vector<uint32_t>& steps) {
  call.job_count = int32_t(jobs.size());
  call.max_tokens = max_tokens_of(jobs);
  call.tree = std::any_of(jobs.begin(), jobs.end(), [](const SeqJob& j) { return j.tree != 0; });
  call.sparse_stores = std::any_of(jobs.begin(), jobs.end(), stores_sparsely);
  call.jobs.resize_discard(std::max<size_t>(jobs.size(), 1));
  call.writes.resize_discard(std::max<size_t>(writes.size(), 1));
  call.steps.resize_discard(std::max<size_t>(steps.size(), 1));
  if (!steps.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(call.steps.data(), steps.data(), steps.size() * sizeof(uint32_t),
                               cudaMemcpyHostToDevice, stream_));
  }
  if (!jobs.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(call.jobs.data(), jobs.data(), jobs.size() * sizeof(SeqJob),
                               cudaMemcpyHostToDevice, stream_));
  }
  if (!writes.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(call.writes.data(), writes.data(), writes.size() * sizeof(SeqWrite),
                               cudaMemcpyHostToDevice, stream_));
  }
}

void CudaBackend::upload(PreparedSequence& out, const std::vector<SeqJob>& jobs,
                         const std::vector<SeqWrite>& writes, const std::vector<uint32_t>& steps) {
  const ModelGeometry& g = shape().geometry;
  out.job_count = int32_t(jobs.size());
  const int32_t max_tokens = max_tokens_of(jobs);
  const bool tree = std::any_of(jobs.begin(), jobs.end(), [](const SeqJob& j) { return j.tree; });
  const bool stash =
      std::any_of(jobs.begin(), jobs.end(), [](const SeqJob& j) { return j.stash_base; });
  // A launch with a tree runs whole (verify jobs are short but for their nodes).
  const int32_t launch_tokens = tree ? max_tokens : std::min(max_tokens, kStepMaxTokens);
  SPECSTATE_ASSERT(launch_tokens <= kStepMaxTreeTokens, "a tree verify fits one step launch");
  const int32_t chunks = tree ? 1 : std::max(1, (max_tokens + kStepMaxTokens - 1) / kStepMaxTokens);
  out.calls.resize(size_t(chunks));
  if (chunks == 1) {
    upload_call(out.calls[0], jobs, writes, steps);
  } else {
    for (int32_t c = 0; c < chunks; ++c) {
      std::vector<SeqJob> chunk_job_table;
      std::vector<SeqWrite> chunk_writes;
      chunk_jobs(jobs, writes, c, chunk_job_table, chunk_writes);
      upload_call(out.calls[size_t(c)], chunk_job_table, chunk_writes);
    }
    carry_conv_.resize_discard(jobs.size() * g.layers * size_t(g.conv_dim()) * g.conv_state_cols());
  }
  out.carries = chunks > 1 || stash;
  out.carries_conv = chunks > 1;
  if (out.carries)
    carry_ssm_.resize_discard(jobs.size() * g.layers * size_t(g.ssm_elements_per_layer()));
  if (out.output_tokens > 0) {
    outputs_.resize_discard(size_t(output_elements(out.job_count, out.output_tokens)));
  }
  const size_t tokens = size_t(out.job_count) * g.layers * std::max(launch_tokens, 1);
  step_qk_.resize_discard(tokens * g.num_k_heads * 2 * g.head_k_dim);
  step_v_.resize_discard(tokens * g.value_dim());
  step_gates_.resize_discard(tokens * g.num_v_heads * (g.decay_values_per_head() + 1));
}

void CudaBackend::prepare(std::span<const SequenceJob> jobs, int32_t output_tokens,
                          PreparedSequence& out) {
  std::vector<SeqJob> table;
  std::vector<SeqWrite> writes;
  std::vector<uint32_t> steps;
  for (const SequenceJob& j : jobs) {
    SeqJob job = blank_job();
    job.active = j.active ? 1 : 0;
    job.guard_row = j.guard.req_row;
    job.guard_count = j.guard.count;
    job.from_zero = j.from_zero ? 1 : 0;
    if (!j.from_zero) set_from(job, j.from);
    job.new_count = j.count;
    if (j.generated) {
      job.request_id = j.generated->request_id;
      job.first_position = j.generated->first_position;
    }
    job.in_payload_slot = j.generated ? kNoRow : j.in_slot;
    job.in_payload_first = j.in_first;
    if (j.pending.count > 0) {
      job.pending_slot = j.pending.payload_slot;
      job.pending_first = j.pending.first_token;
      job.pending_count = j.pending.count;
      job.pending_commit_row = j.pending.commit_row;
    }
    job.round_after = j.round_after;
    job.first_write = int32_t(writes.size());
    if (j.active) {
      for (const StateWrite& w : j.writes)
        writes.push_back({w.after_tokens, w.row});
    }
    job.write_count = int32_t(writes.size()) - job.first_write;
    if (j.window) {
      std::copy(j.ssm_only_rows.begin(), j.ssm_only_rows.end(), job.ssm_only_rows);
      job.rewrite_wide_conv = 1;
    }
    job.payload_out_slot = j.payload_out_slot;
    job.payload_out_first = j.payload_out_first;
    if (!j.parents.empty() && j.active) {
      job.tree = 1;
      std::copy(j.parents.begin(), j.parents.end(), job.parents);
      const std::vector<RecurStep> order = recurrence_steps(j, shape().ssm_dtype == SsmDtype::kF32);
      job.stash_base = has_restart(order) ? 1 : 0;
      job.first_step = int32_t(steps.size());
      job.step_count = int32_t(order.size());
      for (const RecurStep& s : order)
        steps.push_back(
            uint32_t(uint16_t(s.token)) | (s.restart ? kStepRestart : 0u) |
            (s.silent ? kStepSilent : 0u) |
            (s.from_node >= 0 ? kStepFromRow | uint32_t(s.from_node) << kStepNodeShift : 0u));
    }
    table.push_back(job);
  }
  out.output_tokens = output_tokens;
  upload(out, table, writes, steps);
}

void CudaBackend::prepare_prefill(std::span<const PrefillTask> tasks, PreparedSequence& out) {
  prepare(sequence_jobs(tasks), 0, out);
}

void CudaBackend::prepare_verify(VerifyMode mode, std::span<const VerifyTask> tasks,
                                 PreparedSequence& out) {
  int32_t output_tokens = 0;  // as the CPU backend: the largest count, padding tasks included
  for (const VerifyTask& t : tasks)
    output_tokens = std::max(output_tokens, t.tokens.count);
  prepare(sequence_jobs(mode, tasks), output_tokens, out);
}

void CudaBackend::prepare_replay(std::span<const ReplayTask> tasks, PreparedSequence& out) {
  prepare(sequence_jobs(tasks), 0, out);
}

void CudaBackend::prepare_copy(std::span<const RowCopy> copies, PreparedCopy& out) {
  std::vector<CopyJob> jobs;
  for (const RowCopy& c : copies) {
    const bool skip = c.src.is_none() || c.dst_row == kNoRow;
    jobs.push_back(skip ? CopyJob{kNoRow, kNoRow, 0, kNoRow, kNoRow, 0}
                        : CopyJob{c.src.ssm_row, c.src.conv_row, c.src.conv_offset, c.dst_row,
                                  c.guard.req_row, c.guard.count});
  }
  out.job_count = int32_t(jobs.size());
  out.jobs.resize_discard(std::max<size_t>(jobs.size(), 1));
  if (!jobs.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(out.jobs.data(), jobs.data(), jobs.size() * sizeof(CopyJob),
                               cudaMemcpyHostToDevice, stream_));
  }
}

void CudaBackend::launch(const PreparedSequence& prepared) {
  for (const StepCall& call : prepared.calls) {
    SequenceLaunch L;
    L.jobs = call.jobs.data();
    L.writes = call.writes.data();
    L.steps = call.steps.data();
    L.tree = call.tree;
    L.sparse_stores = call.sparse_stores;
    L.job_count = call.job_count;
    L.max_tokens = call.max_tokens;
    L.outputs = prepared.output_tokens > 0 ? outputs_.data() : nullptr;
    L.output_tokens = prepared.output_tokens;
    L.carry_ssm = prepared.carries ? carry_ssm_.data() : nullptr;
    L.carry_conv = prepared.carries_conv ? carry_conv_.data() : nullptr;
    L.step_qk = step_qk_.data();
    L.step_v = step_v_.data();
    L.step_gates = step_gates_.data();
    L.step_tokens = std::max(call.max_tokens, 1);
    launch_step(pool_, L, stream_);
  }
}

void CudaBackend::launch(const PreparedCopy& prepared) {
  launch_copy_rows(pool_, prepared.jobs.data(), prepared.job_count, stream_);
}

void CudaBackend::do_prefill(std::span<const PrefillTask> tasks) {
  prepare_prefill(tasks, call_);
  launch(call_);
}

void CudaBackend::do_verify(VerifyMode mode, std::span<const VerifyTask> tasks) {
  prepare_verify(mode, tasks, call_);
  launch(call_);
  output_tasks_ = call_.job_count;
  output_tokens_ = call_.output_tokens;
}

void CudaBackend::do_replay(std::span<const ReplayTask> tasks) {
  prepare_replay(tasks, call_);
  launch(call_);
}

void CudaBackend::do_copy_rows(std::span<const RowCopy> copies) {
  prepare_copy(copies, copy_call_);
  launch(copy_call_);
}

void CudaBackend::do_gather_payload(std::span<const PayloadGather> gathers) {
  std::vector<GatherJob> jobs;
  for (const PayloadGather& g : gathers) {
    GatherJob& job = jobs.emplace_back();
    job.slot = g.slot;
    job.first = g.first_token;
    job.count = int32_t(g.from.size());
    std::copy(g.from.begin(), g.from.end(), job.from);
  }
  if (jobs.empty()) return;
  gather_jobs_.resize_discard(jobs.size());
  CUDA_CHECK(cudaMemcpyAsync(gather_jobs_.data(), jobs.data(), jobs.size() * sizeof(GatherJob),
                             cudaMemcpyHostToDevice, stream_));
  launch_gather_payload(pool_, gather_jobs_.data(), int32_t(jobs.size()), stream_);
}

void CudaBackend::do_write_state(int32_t row, const RowBytes& state) {
  const ModelGeometry& g = shape().geometry;
  const size_t wc = g.conv_state_cols();
  const int64_t ssm_bytes = shape().ssm_row_bytes();
  std::vector<char> device_ssm(state.ssm.size());
  for (int l = 0; l < g.layers; ++l) {
    const uint16_t* src = state.conv.data() + size_t(l) * g.conv_dim() * wc;
    CUDA_CHECK(cudaMemcpy2DAsync(conv_row(l, row), pool_.conv_cols * 2, src, wc * 2, wc * 2,
                                 g.conv_dim(), cudaMemcpyHostToDevice, stream_));
    char* layer_ssm = device_ssm.data() + l * ssm_bytes;
    permute_ssm_row(reinterpret_cast<const char*>(state.ssm.data()) + l * ssm_bytes, layer_ssm, g,
                    ssm_element_bytes(shape().ssm_dtype), Toward::kDevice);
    CUDA_CHECK(
        cudaMemcpyAsync(ssm_row(l, row), layer_ssm, ssm_bytes, cudaMemcpyHostToDevice, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::do_set_accepted(std::span<const AcceptedCount> counts) {
  if (counts.empty()) return;
  accept_jobs_.resize_discard(counts.size());
  CUDA_CHECK(cudaMemcpyAsync(accept_jobs_.data(), counts.data(),
                             counts.size() * sizeof(AcceptedCount), cudaMemcpyHostToDevice,
                             stream_));
  launch_set_accepted(accepted_.data(), accept_jobs_.data(), int32_t(counts.size()), stream_);
}

int32_t CudaBackend::do_accepted(int32_t req_row) const {
  int32_t count = 0;
  CUDA_CHECK(cudaMemcpyAsync(&count, accepted_.data() + req_row, sizeof count,
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return count;
}

void CudaBackend::do_fill_row(int32_t row, uint8_t byte) {
  for (int l = 0; l < shape().geometry.layers; ++l) {
    CUDA_CHECK(cudaMemsetAsync(conv_row(l, row), byte, shape().conv_row_bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(ssm_row(l, row), byte, shape().ssm_row_bytes(), stream_));
  }
}

RowBytes CudaBackend::do_read(const StateLoc& loc, int32_t first_col, int32_t cols) const {
  const ModelGeometry& g = shape().geometry;
  const int64_t ssm_bytes = shape().ssm_row_bytes();
  RowBytes out;
  out.conv.resize(size_t(g.layers) * g.conv_dim() * cols);
  out.ssm.resize(size_t(ssm_bytes) * g.layers);
  std::vector<char> device_ssm(out.ssm.size());
  for (int l = 0; l < g.layers; ++l) {
    CUDA_CHECK(cudaMemcpy2DAsync(out.conv.data() + size_t(l) * g.conv_dim() * cols,
                                 size_t(cols) * 2, conv_row(l, loc.conv_row) + first_col,
                                 pool_.conv_cols * 2, size_t(cols) * 2, g.conv_dim(),
                                 cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(device_ssm.data() + l * ssm_bytes, ssm_row(l, loc.ssm_row),
                               ssm_bytes, cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int l = 0; l < g.layers; ++l) {
    permute_ssm_row(device_ssm.data() + l * ssm_bytes,
                    reinterpret_cast<char*>(out.ssm.data()) + l * ssm_bytes, g,
                    ssm_element_bytes(shape().ssm_dtype), Toward::kCanonical);
  }
  return out;
}

uint64_t CudaBackend::do_digest(const StateLoc& loc, int32_t first_col, int32_t cols) const {
  launch_digest(pool_, loc, first_col, cols, digest_.data(), stream_);
  unsigned long long sum = 0;
  CUDA_CHECK(cudaMemcpyAsync(&sum, digest_.data(), sizeof sum, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return sum;
}

VerifyOutputs CudaBackend::do_read_outputs() const {
  VerifyOutputs out;
  out.tasks = output_tasks_;
  out.tokens = output_tokens_;
  out.values.resize(size_t(output_elements(output_tasks_, output_tokens_)));
  if (!out.values.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(out.values.data(), outputs_.data(), out.values.size() * 2,
                               cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return out;
}

std::vector<uint8_t> CudaBackend::do_read_payload(int32_t slot) const {
  const int layers = shape().geometry.layers;
  const size_t per_token = size_t(pool_.token.bytes());
  const int tokens = shape().payload_tokens;
  std::vector<uint8_t> out(size_t(tokens) * layers * per_token);
  for (int l = 0; l < layers && tokens > 0; ++l) {
    const uint8_t* src = payload_.data() + (size_t(l) * pool_.slots + slot) * tokens * per_token;
    CUDA_CHECK(cudaMemcpy2DAsync(out.data() + l * per_token, layers * per_token, src, per_token,
                                 per_token, tokens, cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return out;
}

}  // namespace cuda
}  // namespace specstate
