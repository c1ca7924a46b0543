/* A real LiteRT external delegate that crashes the process (SIGSEGV) when it sees a model.
 *
 * Stands for the Edge TPU / GPU delegates that segfault in the field: loaded through LiteRT's
 * external delegate ABI, its Prepare dereferences a null pointer. Only an agent that runs
 * inference in a separate process survives it. See failing_delegate.c for the struct.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef struct TfLiteContext TfLiteContext;
typedef struct TfLiteDelegate TfLiteDelegate;

struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
};

static TfLiteStatus crash(TfLiteContext* context, TfLiteDelegate* delegate) {
  (void)context;
  (void)delegate;
  volatile int* nowhere = NULL;
  *nowhere = 42;
  return kTfLiteOk;
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  (void)keys;
  (void)values;
  (void)count;
  (void)report_error;
  TfLiteDelegate* delegate = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate));
  delegate->Prepare = crash;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }
