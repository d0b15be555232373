// Renders one part with an STK physical model (ensemble_synth.synthesis.physical): events on
// stdin, native-endian float32 samples on stdout. Built by scripts/install-stk.sh.
// Usage: stk-render INSTRUMENT SAMPLE_RATE SEED VOICES LOWPASS_HZ
//   INSTRUMENT: Bowed Clarinet Saxofony Flute; LOWPASS_HZ: a one-pole low-pass on the output (0: none)
// Events, one a line, in time order (seconds from the start):
//   c TIME NUMBER VALUE      control change (0-128) to every voice
//   n TIME PITCH AMPLITUDE   note on (MIDI pitch, fractional allowed; amplitude 0-128)
//   f TIME PITCH AMPLITUDE   note off
//   g TIME GAIN RAMP         output gain from TIME, reached linearly over RAMP seconds (starts at 1)
//   e TIME                   end: render up to TIME, then stop
#include <stk/Bowed.h>
#include <stk/Clarinet.h>
#include <stk/Flute.h>
#include <stk/OnePole.h>
#include <stk/Saxofony.h>
#include <stk/Voicer.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

using namespace stk;

static Instrmnt *make(const std::string &name) {
  if (name == "Bowed") return new Bowed(20.0);
  if (name == "Clarinet") return new Clarinet(20.0);
  if (name == "Saxofony") return new Saxofony(20.0);
  if (name == "Flute") return new Flute(20.0);
  return nullptr;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: stk-render INSTRUMENT SAMPLE_RATE SEED VOICES LOWPASS_HZ\n");
    return 2;
  }
  std::string name = argv[1];
  double rate = std::atof(argv[2]);
  unsigned int seed = (unsigned int)std::strtoul(argv[3], nullptr, 10);
  int count = std::atoi(argv[4]);
  double lowpass = std::atof(argv[5]);
  if (rate < 8000 || count < 1 || count > 16) {
    std::fprintf(stderr, "stk-render: bad sample rate or voice count\n");
    return 2;
  }
  Stk::setSampleRate(rate);
  Stk::showWarnings(false);
  std::vector<std::unique_ptr<Instrmnt>> voices;
  Voicer voicer(0.2);
  for (int i = 0; i < count; ++i) {
    Instrmnt *inst = make(name);
    if (!inst) {
      std::fprintf(stderr, "stk-render: unknown instrument %s\n", name.c_str());
      return 2;
    }
    voices.emplace_back(inst);
    voicer.addInstrument(inst);
  }
  OnePole filter;
  if (lowpass > 0) filter.setPole(std::exp(-2.0 * 3.14159265358979323846 * lowpass / rate));
  double gain = 1.0, target = 1.0, step = 0.0;
  std::srand(seed);  // STK's noise generators draw from rand(): seeded here, the render is repeatable
  const size_t block = 4096;
  std::vector<float> out(block);
  long long written = 0;
  char kind;
  double time;
  while (std::cin >> kind >> time) {
    long long until = (long long)std::llround(time * rate);
    while (written < until) {
      size_t n = (size_t)std::min<long long>(block, until - written);
      for (size_t i = 0; i < n; ++i) {
        if (gain != target) {
          gain += step;
          if ((step > 0 && gain > target) || (step < 0 && gain < target)) gain = target;
        }
        double y = voicer.tick();
        if (lowpass > 0) y = filter.tick(y);
        out[i] = (float)(gain * y);
      }
      std::fwrite(out.data(), sizeof(float), n, stdout);
      written += n;
    }
    if (kind == 'e') break;
    double a, b;
    if (kind == 'g') {
      double ramp;
      if (!(std::cin >> a >> ramp)) {
        std::fprintf(stderr, "stk-render: malformed event at %.6f s\n", time);
        return 2;
      }
      target = a;
      step = ramp > 0 ? (target - gain) / (ramp * rate) : target - gain;
      continue;
    }
    if (!(std::cin >> a >> b)) {
      std::fprintf(stderr, "stk-render: malformed event at %.6f s\n", time);
      return 2;
    }
    if (kind == 'c') voicer.controlChange((int)a, b);
    else if (kind == 'n') voicer.noteOn(a, b);
    else if (kind == 'f') voicer.noteOff(a, b);
    else {
      std::fprintf(stderr, "stk-render: unknown event '%c'\n", kind);
      return 2;
    }
  }
  std::fflush(stdout);
  return 0;
}
