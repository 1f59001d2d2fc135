// engine/report/page.hpp: what a report page is made of, independent of what it reports: headline
// figures, sections of charts, tables, confusion matrices and image galleries. The builder of a
// run's report (run_report.hpp) fills these from the metrics JSON; html.hpp draws them. Nothing
// here knows about "is it an 8?": a K-class report (class_report.hpp) fills the same blocks (a KxK
// confusion matrix, a table per class).
//
// Every number a page shows may carry a `key`: the JSON pointer (RFC 6901, e.g. "/test/accuracy")
// of the value in the metrics JSON it was formatted from. The renderer writes it as the element's
// data-key attribute, so a test (or a reader) can check each figure on the page against the file.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "engine/report/curves.hpp"

namespace octa::report {

// A piece of text, usually a formatted number, and where in the metrics JSON it came from.
struct Cell {
  std::string text;
  std::string key;      // JSON pointer, or empty for text that is not from the metrics file
  bool numeric = true;  // right-aligned, tabular figures
};

struct Kpi {
  std::string label;  // e.g. "Accuracy"
  Cell value;         // e.g. "98.71%"
  std::string note;   // e.g. "majority baseline "
  Cell note_value;    // e.g. "90.26%" (may be empty)
};

struct Table {
  std::string title;
  std::string caption;  // under the title: which split, what the rows mean
  std::vector<std::string> header;
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> row_tags;  // per row, may be empty: "highlight", "best", "muted"
};

struct Series {
  std::string label;  // legend, e.g. "test"
  Cell stat;          // after the label in the legend, e.g. "AUC 0.9981" (may be empty)
  std::vector<CurvePoint> points;
  std::string color;     // CSS colour
  bool markers = false;  // a dot at every point (per-epoch curves)
  bool dashed = false;   // reference lines (chance, prevalence)
};

struct Chart {
  std::string title;
  std::string caption;
  std::string x_label, y_label;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  bool x_integer_ticks = false;  // epochs
  bool y_percent = false;        // ticks as percentages
  std::vector<Series> series;
  std::string empty_note;  // shown instead of the plot when no series has points
};

struct Confusion {
  std::string title;
  std::string caption;
  std::vector<std::string> labels;                // K class names, rows = actual, cols = predicted
  std::vector<std::vector<std::int64_t>> counts;  // K x K
  std::vector<std::vector<std::string>> keys;     // K x K JSON pointers (may be empty strings)
  std::vector<std::string> label_keys;            // K JSON pointers of the names (may be empty)
};

struct Tile {
  std::vector<std::uint8_t> pixels;  // side x side gray, shown magnified with sharp pixels
  int side = 28;
  std::string caption;    // e.g. "p 0.93"
  Cell detail;            // e.g. "label 3"
  std::string badge;      // e.g. "FP"
  std::string badge_tag;  // "bad" or "warn": the badge's colour
  std::string note;       // a last, muted line, e.g. "#4807"
};

struct Gallery {
  std::string title;
  std::string caption;
  std::vector<Tile> tiles;
  std::string empty_note;
};

struct Note {
  std::string text;
  std::string tag;  // "", "warn" or "info"
};

using Block = std::variant<Chart, Table, Confusion, Gallery, Note>;

struct Section {
  std::string id;  // the HTML anchor
  std::string title;
  std::string intro;
  int columns = 1;  // blocks side by side on a wide screen (1 or 2)
  std::vector<Block> blocks;
};

struct Page {
  std::string title;         // <title> and the heading
  std::string subtitle;      // under it
  std::vector<Cell> badges;  // small chips beside the heading (device, model)
  std::vector<Kpi> kpis;
  std::string kpi_caption;  // what split the headline figures are on
  std::vector<Section> sections;
  std::string footer;
};

}  // namespace octa::report
