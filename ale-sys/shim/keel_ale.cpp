// A C ABI over ale::ALEInterface for Keel: no C++ type or exception crosses it. Every call that
// can fail returns 0 on success and -1 on failure, with the message in the caller's buffer.
#include <cstring>
#include <exception>
#include <string>

#include "ale/ale_interface.hpp"
#include "ale/common/Log.hpp"

namespace {

void write_error(char* buf, std::size_t len, const std::string& message) {
  if (buf == nullptr || len == 0) return;
  std::size_t n = message.size() < len - 1 ? message.size() : len - 1;
  std::memcpy(buf, message.data(), n);
  buf[n] = '\0';
}

template <typename F>
int guarded(char* err, std::size_t err_len, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    write_error(err, err_len, e.what());
  } catch (...) {
    write_error(err, err_len, "unknown C++ exception in ALE");
  }
  return -1;
}

}  // namespace

extern "C" {

struct keel_ale;

keel_ale* keel_ale_new(char* err, std::size_t err_len) {
  ale::ALEInterface* ale = nullptr;
  guarded(err, err_len, [&] {
    ale::Logger::setMode(ale::Logger::Error);
    ale = new ale::ALEInterface();
  });
  return reinterpret_cast<keel_ale*>(ale);
}

void keel_ale_free(keel_ale* handle) {
  delete reinterpret_cast<ale::ALEInterface*>(handle);
}

static ale::ALEInterface& get(keel_ale* handle) {
  return *reinterpret_cast<ale::ALEInterface*>(handle);
}

// Whether ALE recognises the ROM file by its MD5 (1), or not (0); -1 if it cannot be read.
int keel_ale_is_supported_rom(const char* path, char* err, std::size_t err_len) {
  int supported = 0;
  int rc = guarded(err, err_len, [&] {
    supported = ale::ALEInterface::isSupportedROM(std::string(path)).has_value() ? 1 : 0;
  });
  return rc == 0 ? supported : -1;
}

int keel_ale_set_int(keel_ale* h, const char* key, int value, char* err, std::size_t err_len) {
  return guarded(err, err_len, [&] { get(h).setInt(key, value); });
}

int keel_ale_set_float(keel_ale* h, const char* key, float value, char* err, std::size_t err_len) {
  return guarded(err, err_len, [&] { get(h).setFloat(key, value); });
}

int keel_ale_set_bool(keel_ale* h, const char* key, int value, char* err, std::size_t err_len) {
  return guarded(err, err_len, [&] { get(h).setBool(key, value != 0); });
}

// Loads a ROM that keel_ale_is_supported_rom accepted (ALE exits the process on an unknown one).
int keel_ale_load_rom(keel_ale* h, const char* path, char* err, std::size_t err_len) {
  return guarded(err, err_len, [&] { get(h).loadROM(std::string(path)); });
}

int keel_ale_set_mode(keel_ale* h, unsigned mode, char* err, std::size_t err_len) {
  return guarded(err, err_len, [&] { get(h).setMode(mode); });
}

int keel_ale_set_difficulty(keel_ale* h, unsigned difficulty, char* err, std::size_t err_len) {
  return guarded(err, err_len, [&] { get(h).setDifficulty(difficulty); });
}

// The minimal (full = 0) or legal (full = 1) action set: writes up to `cap` ALE action codes
// into `out` and returns how many there are.
std::size_t keel_ale_action_set(keel_ale* h, int full, int* out, std::size_t cap) {
  ale::ActionVect actions = full ? get(h).getLegalActionSet() : get(h).getMinimalActionSet();
  for (std::size_t i = 0; i < actions.size() && i < cap; ++i) out[i] = static_cast<int>(actions[i]);
  return actions.size();
}

std::size_t keel_ale_modes(keel_ale* h, unsigned* out, std::size_t cap) {
  ale::ModeVect modes = get(h).getAvailableModes();
  for (std::size_t i = 0; i < modes.size() && i < cap; ++i) out[i] = modes[i];
  return modes.size();
}

std::size_t keel_ale_difficulties(keel_ale* h, unsigned* out, std::size_t cap) {
  ale::DifficultyVect difficulties = get(h).getAvailableDifficulties();
  for (std::size_t i = 0; i < difficulties.size() && i < cap; ++i) out[i] = difficulties[i];
  return difficulties.size();
}

int keel_ale_act(keel_ale* h, int action, float paddle_strength) {
  return get(h).act(static_cast<ale::Action>(action), paddle_strength);
}

void keel_ale_reset_game(keel_ale* h) { get(h).reset_game(); }

int keel_ale_game_over(keel_ale* h, int with_truncation) { return get(h).game_over(with_truncation != 0); }

int keel_ale_game_truncated(keel_ale* h) { return get(h).game_truncated(); }

int keel_ale_lives(keel_ale* h) { return get(h).lives(); }

int keel_ale_episode_frame_number(keel_ale* h) { return get(h).getEpisodeFrameNumber(); }

std::size_t keel_ale_screen_height(keel_ale* h) { return get(h).getScreen().height(); }

std::size_t keel_ale_screen_width(keel_ale* h) { return get(h).getScreen().width(); }

// ALE's grayscale palette applied to the screen: height * width bytes into `out`.
void keel_ale_screen_grayscale(keel_ale* h, unsigned char* out) {
  const ale::ALEScreen& screen = get(h).getScreen();
  get(h).theOSystem->colourPalette().applyPaletteGrayscale(out, screen.getArray(), screen.height() * screen.width());
}

// The screen's palette indices, height * width bytes into `out` (what the palettes map).
void keel_ale_screen_indices(keel_ale* h, unsigned char* out) {
  const ale::ALEScreen& screen = get(h).getScreen();
  std::memcpy(out, screen.getArray(), screen.height() * screen.width());
}

// The console's 128 bytes of RAM into `out`; returns how many were written (at most `cap`).
std::size_t keel_ale_ram(keel_ale* h, unsigned char* out, std::size_t cap) {
  const ale::ALERAM& ram = get(h).getRAM();
  std::size_t n = ram.size() < cap ? ram.size() : cap;
  for (std::size_t i = 0; i < n; ++i) out[i] = ram.get(i);
  return n;
}

// ALE's grayscale palette as a table: the gray level of each of the 256 palette indices.
void keel_ale_grayscale_palette(keel_ale* h, unsigned char* out) {
  unsigned char indices[256];
  for (int i = 0; i < 256; ++i) indices[i] = static_cast<unsigned char>(i);
  get(h).theOSystem->colourPalette().applyPaletteGrayscale(out, indices, 256);
}

// The screen in RGB, height * width * 3 bytes (interleaved) into `out`.
void keel_ale_screen_rgb(keel_ale* h, unsigned char* out) {
  const ale::ALEScreen& screen = get(h).getScreen();
  get(h).theOSystem->colourPalette().applyPaletteRGB(out, screen.getArray(), screen.height() * screen.width());
}

}  // extern "C"
