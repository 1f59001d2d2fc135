// engine/report/html.cpp: the renderer: one HTML string with its CSS, SVG charts drawn from the
// series' points (nice ticks, grid, legend), tables, confusion matrices and galleries of PNG data
// URIs.
#include "engine/report/html.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <fmt/format.h>

#include "engine/io/output_guard.hpp"
#include "engine/predict/image.hpp"

namespace octa::report {
namespace {

constexpr const char* kCss = R"css(
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2433;--muted:#667085;--line:#e4e7ec;--soft:#f2f4f7;
--accent:#2f6fed;--good:#12805c;--bad:#c4320a;--warn:#b54708}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue","DejaVu Sans",Arial,sans-serif;-webkit-font-smoothing:antialiased}
.wrap{max-width:1180px;margin:0 auto;padding:34px 28px 48px}
header.top{display:flex;align-items:flex-end;justify-content:space-between;gap:16px;
flex-wrap:wrap;margin-bottom:22px}
h1{font-size:29px;line-height:1.2;margin:0;letter-spacing:-.015em}
h1 .brand{color:var(--accent);font-weight:700;margin-right:10px}
.subtitle{color:var(--muted);margin-top:6px}
.badges{display:flex;gap:8px;flex-wrap:wrap}
.badge{background:var(--card);border:1px solid var(--line);border-radius:999px;padding:4px 12px;
font-size:13px;color:#344054}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:12px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;
box-shadow:0 1px 2px rgba(16,24,40,.04)}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
font-weight:600}
.kpi .value{display:block;font-size:28px;font-weight:650;font-variant-numeric:tabular-nums;
margin-top:2px;letter-spacing:-.01em}
.kpi .kpi-note{font-size:12.5px;color:var(--muted)}
.kpi .nv{font-variant-numeric:tabular-nums;font-weight:600;color:#344054}
.kpi-caption{font-size:13px;color:var(--muted);margin:8px 2px 0}
section{margin-top:30px}
section>h2{font-size:19px;margin:0 0 2px;letter-spacing:-.01em}
section>p.intro{margin:0 0 12px;color:var(--muted);max-width:92ch}
.grid{display:grid;gap:16px;grid-template-columns:minmax(0,1fr)}
@media (min-width:900px){.grid.cols-2{grid-template-columns:minmax(0,1fr) minmax(0,1fr)}}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:16px 18px;
box-shadow:0 1px 2px rgba(16,24,40,.04);min-width:0;overflow-x:auto}
.card h3{font-size:15px;margin:0}
.card .caption{font-size:13px;color:var(--muted);margin:2px 0 10px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-weight:600;color:#475467;background:var(--soft);font-size:12.5px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{white-space:normal}
tr.highlight td{background:#eef4ff}
tr.best td{background:#e7f8ef;font-weight:600}
tr.muted td{color:var(--muted)}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;
fill:#667085}
svg.chart text.axis{fill:#475467;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:13px;margin-top:6px;color:#344054}
.legend .sw{display:inline-block;width:16px;height:3px;border-radius:2px;vertical-align:middle;
margin-right:7px}
.legend .sw.dashed{background:repeating-linear-gradient(90deg,#98a2b3 0 4px,transparent 4px 7px)!important}
.legend .stat{font-variant-numeric:tabular-nums;font-weight:600;margin-left:4px}
.empty{color:var(--muted);font-size:14px;padding:36px 0;text-align:center}
table.confusion{width:auto;margin:4px auto 0}
table.confusion th{text-align:center}
table.confusion th.row{text-align:right;background:none}
table.confusion td.cell{text-align:center;font-variant-numeric:tabular-nums;font-size:22px;
font-weight:650;padding:14px 26px;border:2px solid #fff;border-radius:8px;min-width:140px}
table.confusion td.cell small{display:block;font-size:12px;font-weight:500;color:#475467}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(86px,1fr));gap:12px 10px}
.tile{text-align:center;font-size:12px;color:#344054;line-height:1.35}
.tile img{width:56px;height:56px;image-rendering:pixelated;border-radius:6px;display:block;
margin:0 auto 5px;box-shadow:0 0 0 1px rgba(16,24,40,.1)}
.tile .p{font-variant-numeric:tabular-nums;font-weight:600}
.tile .n{color:var(--muted);font-size:11px}
.b{display:inline-block;padding:0 6px;border-radius:999px;font-size:11px;font-weight:650;
margin-left:3px}
.b.bad{background:#fee4e2;color:var(--bad)}
.b.warn{background:#fef0c7;color:var(--warn)}
.note{border-left:3px solid var(--accent);background:#f3f7ff;padding:10px 14px;border-radius:8px;
font-size:14px}
.note.warn{border-color:#f79009;background:#fffaeb}
footer{margin-top:38px;color:var(--muted);font-size:12.5px;border-top:1px solid var(--line);
padding-top:14px}
)css";

// Only for pages with a confusion matrix of more than two classes (render_confusion_grid), so a
// binary run's page is what it was before K-class pages existed.
constexpr const char* kCssGrid = R"css(
table.cm{width:auto;margin:4px 0 0}
table.cm th{text-align:center;background:none;vertical-align:bottom}
table.cm th.col{white-space:normal;max-width:86px;min-width:46px;font-size:12px;line-height:1.25}
table.cm th.corner{text-align:left;color:var(--muted);font-weight:500;font-size:12px}
table.cm th.row{text-align:right;font-size:12.5px}
table.cm td.c{text-align:center;font-variant-numeric:tabular-nums;padding:7px 8px;min-width:46px;
border:1px solid #fff;border-radius:5px}
table.cm td.c.zero{color:#c0c5cf}
table.cm td.c.dark{color:#fff}
table.cm td.tot{color:var(--muted);text-align:right;font-variant-numeric:tabular-nums}
)css";

std::string attr_key(const std::string& key) {
  return key.empty() ? std::string() : fmt::format(" data-key=\"{}\"", html_escape(key));
}

std::string cell_span(const Cell& c, const char* cls) {
  return fmt::format("<span class=\"{}\"{}>{}</span>", cls, attr_key(c.key), html_escape(c.text));
}

// ---------------------------------------------------------------------------------------------
// Charts

struct Ticks {
  std::vector<double> values;
  int decimals = 0;
};

// About `target` round ticks (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi].
Ticks nice_ticks(double lo, double hi, int target, bool integers) {
  Ticks t;
  const double span = hi > lo ? hi - lo : 1.0;
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  if (integers) step = std::max(1.0, std::round(step));
  t.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::abs(step / std::pow(10.0, -t.decimals) -
               std::round(step / std::pow(10.0, -t.decimals))) > 1e-9) {
    t.decimals += 1;  // 2.5 x 10^k
  }
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    t.values.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::string tick_label(double v, int decimals, bool percent) {
  if (percent) return fmt::format("{:.{}f}%", v * 100.0, std::max(0, decimals - 2));
  return fmt::format("{:.{}f}", v, decimals);
}

std::string render_chart(const Chart& c) {
  std::string s = "<div class=\"card\">";
  s += fmt::format("<h3>{}</h3>", html_escape(c.title));
  if (!c.caption.empty()) s += fmt::format("<p class=\"caption\">{}</p>", html_escape(c.caption));
  const bool any = std::any_of(c.series.begin(), c.series.end(),
                               [](const Series& x) { return !x.points.empty(); });
  if (!any) {
    s += fmt::format("<div class=\"empty\">{}</div></div>", html_escape(c.empty_note));
    return s;
  }
  constexpr double W = 560, H = 330, R = 18, T = 14, B = 48;
  const double L = c.y_percent ? 72 : 60;  // room for "100.0%"
  const double pw = W - L - R, ph = H - T - B;
  const double xs = c.x_max > c.x_min ? c.x_max - c.x_min : 1.0;
  const double ys = c.y_max > c.y_min ? c.y_max - c.y_min : 1.0;
  const auto X = [&](double x) { return L + (x - c.x_min) / xs * pw; };
  const auto Y = [&](double y) { return T + ph - (y - c.y_min) / ys * ph; };
  s += fmt::format("<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">", W,
                   H, html_escape(c.title));
  // Grid and tick labels.
  const Ticks xt = nice_ticks(c.x_min, c.x_max, c.x_integer_ticks ? 8 : 5, c.x_integer_ticks);
  const Ticks yt = nice_ticks(c.y_min, c.y_max, 5, false);
  for (const double v : yt.values) {
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eef0f3\"/>", L,
        Y(v), L + pw, Y(v));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", L - 8,
                     Y(v) + 4, tick_label(v, yt.decimals, c.y_percent));
  }
  for (const double v : xt.values) {
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eef0f3\"/>", X(v),
        T, X(v), T + ph);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", X(v),
                     T + ph + 18, tick_label(v, xt.decimals, false));
  }
  s += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#cfd4dc\"/>",
      L, T, pw, ph);
  s +=
      fmt::format("<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>",
                  L + pw / 2, H - 8, html_escape(c.x_label));
  s += fmt::format(
      "<text class=\"axis\" transform=\"translate(14 {:.1f}) rotate(-90)\" "
      "text-anchor=\"middle\">{}</text>",
      T + ph / 2, html_escape(c.y_label));
  // Series, clipped to the plot.
  const std::string clip = fmt::format("clip{:x}", std::hash<std::string>{}(c.title) & 0xffffff);
  s += fmt::format(
      "<clipPath id=\"{}\"><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" "
      "height=\"{:.1f}\"/></clipPath><g clip-path=\"url(#{})\">",
      clip, L - 4, T - 4, pw + 8, ph + 8, clip);
  for (const Series& x : c.series) {
    if (x.points.empty()) continue;
    std::string d;
    for (std::size_t i = 0; i < x.points.size(); ++i) {
      d += fmt::format("{}{:.2f} {:.2f}", i == 0 ? "M" : " L", X(x.points[i].x), Y(x.points[i].y));
    }
    s += fmt::format(
        "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" "
        "stroke-linecap=\"round\"{}/>",
        d, html_escape(x.color), x.dashed ? "1.5" : "2.2",
        x.dashed ? " stroke-dasharray=\"5 4\"" : "");
    if (x.markers) {
      for (const CurvePoint& p : x.points) {
        s += fmt::format(
            "<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3.6\" fill=\"{}\" stroke=\"#fff\" "
            "stroke-width=\"1.5\"/>",
            X(p.x), Y(p.y), html_escape(x.color));
      }
    }
  }
  s += "</g></svg><div class=\"legend\">";
  for (const Series& x : c.series) {
    if (x.points.empty() && !x.dashed) continue;
    s += fmt::format("<span><span class=\"sw{}\" style=\"background:{}\"></span>{}",
                     x.dashed ? " dashed" : "", html_escape(x.color), html_escape(x.label));
    if (!x.stat.text.empty()) s += cell_span(x.stat, "stat");
    s += "</span>";
  }
  s += "</div></div>";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Tables, confusion matrices, galleries, notes

std::string render_table(const Table& t) {
  std::string s = "<div class=\"card\">";
  if (!t.title.empty()) s += fmt::format("<h3>{}</h3>", html_escape(t.title));
  if (!t.caption.empty()) s += fmt::format("<p class=\"caption\">{}</p>", html_escape(t.caption));
  // A column is numeric when all its cells are.
  std::vector<bool> numeric(t.header.size(), true);
  for (const auto& row : t.rows) {
    for (std::size_t i = 0; i < row.size() && i < numeric.size(); ++i) {
      numeric[i] = numeric[i] && row[i].numeric;
    }
  }
  s += "<table><thead><tr>";
  for (std::size_t i = 0; i < t.header.size(); ++i) {
    s += fmt::format("<th{}>{}</th>", numeric[i] ? " class=\"num\"" : "", html_escape(t.header[i]));
  }
  s += "</tr></thead><tbody>";
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const std::string tag = r < t.row_tags.size() ? t.row_tags[r] : std::string();
    s += tag.empty() ? "<tr>" : fmt::format("<tr class=\"{}\">", html_escape(tag));
    for (const Cell& c : t.rows[r]) {
      s += fmt::format("<td class=\"{}\"{}>{}</td>", c.numeric ? "num" : "text", attr_key(c.key),
                       html_escape(c.text));
    }
    s += "</tr>";
  }
  s += "</tbody></table></div>";
  return s;
}

std::string render_confusion(const Confusion& c) {
  std::string s = "<div class=\"card\">";
  s += fmt::format("<h3>{}</h3>", html_escape(c.title));
  if (!c.caption.empty()) s += fmt::format("<p class=\"caption\">{}</p>", html_escape(c.caption));
  const std::size_t k = c.labels.size();
  s += "<table class=\"confusion\"><thead><tr><th class=\"row\"></th>";
  for (const std::string& l : c.labels) {
    s += fmt::format("<th>predicted {}</th>", html_escape(l));
  }
  s += "</tr></thead><tbody>";
  for (std::size_t i = 0; i < k; ++i) {
    std::int64_t row_total = 0;
    for (std::size_t j = 0; j < k; ++j) row_total += c.counts[i][j];
    s += fmt::format("<tr><th class=\"row\">actual {}</th>", html_escape(c.labels[i]));
    for (std::size_t j = 0; j < k; ++j) {
      const double share =
          row_total > 0 ? static_cast<double>(c.counts[i][j]) / static_cast<double>(row_total) : 0;
      // Correct answers in blue, errors in red, stronger with their share of the row.
      const double a = 0.06 + 0.5 * std::sqrt(share);
      const std::string bg = i == j ? fmt::format("rgba(47,111,237,{:.3f})", a)
                                    : fmt::format("rgba(217,45,32,{:.3f})", 0.04 + 0.6 * share);
      const std::string key = i < c.keys.size() && j < c.keys[i].size() ? c.keys[i][j] : "";
      s += fmt::format(
          "<td class=\"cell\" style=\"background:{}\"><span{}>{}</span><small>{:.1f}% of actual "
          "{}</small></td>",
          bg, attr_key(key), with_commas(c.counts[i][j]), share * 100.0, html_escape(c.labels[i]));
    }
    s += "</tr>";
  }
  s += "</tbody></table></div>";
  return s;
}

// K > 2 classes: a compact grid (class names on both axes, counts, a row total); each cell shaded
// by its share of the row, blue on the diagonal and red off it, so the confused pairs stand out.
std::string render_confusion_grid(const Confusion& c) {
  std::string s = "<div class=\"card\">";
  s += fmt::format("<h3>{}</h3>", html_escape(c.title));
  if (!c.caption.empty()) s += fmt::format("<p class=\"caption\">{}</p>", html_escape(c.caption));
  const std::size_t k = c.labels.size();
  const auto label = [&](std::size_t i) {
    const std::string key = i < c.label_keys.size() ? c.label_keys[i] : "";
    return fmt::format("<span{}>{}</span>", attr_key(key), html_escape(c.labels[i]));
  };
  s += "<table class=\"confusion cm\"><thead><tr><th class=\"corner\">actual \\ "
       "predicted</th>";
  for (std::size_t j = 0; j < k; ++j) s += fmt::format("<th class=\"col\">{}</th>", label(j));
  s += "<th class=\"col\">total</th></tr></thead><tbody>";
  for (std::size_t i = 0; i < k; ++i) {
    std::int64_t row_total = 0;
    for (std::size_t j = 0; j < k; ++j) row_total += c.counts[i][j];
    s += fmt::format("<tr><th class=\"row\">{}</th>", label(i));
    for (std::size_t j = 0; j < k; ++j) {
      const std::int64_t n = c.counts[i][j];
      const double share =
          row_total > 0 ? static_cast<double>(n) / static_cast<double>(row_total) : 0;
      // Errors are few: their shade grows with the square root of their share, so a 2% confusion
      // is visible beside a 95% diagonal.
      const double a = n == 0   ? 0.0
                       : i == j ? 0.10 + 0.75 * share
                                : std::min(0.9, 0.12 + 0.85 * std::sqrt(share));
      const std::string bg = i == j ? fmt::format("rgba(47,111,237,{:.3f})", a)
                                    : fmt::format("rgba(217,45,32,{:.3f})", a);
      const std::string key = i < c.keys.size() && j < c.keys[i].size() ? c.keys[i][j] : "";
      s += fmt::format(
          "<td class=\"c{}\" style=\"background:{}\" title=\"{} of {} actual {} predicted as {} "
          "({:.1f}%)\"><span{}>{}</span></td>",
          n == 0     ? " zero"
          : a > 0.55 ? " dark"
                     : "",
          bg, n, row_total, html_escape(c.labels[i]), html_escape(c.labels[j]), share * 100.0,
          attr_key(key), with_commas(n));
    }
    s += fmt::format("<td class=\"tot\">{}</td></tr>", with_commas(row_total));
  }
  s += "</tbody></table></div>";
  return s;
}

std::string render_gallery(const Gallery& g) {
  std::string s = "<div class=\"card\">";
  s += fmt::format("<h3>{}</h3>", html_escape(g.title));
  if (!g.caption.empty()) s += fmt::format("<p class=\"caption\">{}</p>", html_escape(g.caption));
  if (g.tiles.empty()) {
    s += fmt::format("<div class=\"empty\">{}</div></div>", html_escape(g.empty_note));
    return s;
  }
  s += "<div class=\"gallery\">";
  for (const Tile& t : g.tiles) {
    predict::Image img{t.side, t.side, 1, t.pixels};
    s += fmt::format(
        "<div class=\"tile\"><img alt=\"{}\" src=\"data:image/png;base64,{}\"><span "
        "class=\"p\">{}</span>{}<br>{}<br><span class=\"n\">{}</span></div>",
        html_escape(t.detail.text), base64(predict::encode_png(img)), html_escape(t.caption),
        t.badge.empty() ? std::string()
                        : fmt::format("<span class=\"b {}\">{}</span>", html_escape(t.badge_tag),
                                      html_escape(t.badge)),
        cell_span(t.detail, "d"), html_escape(t.note));
  }
  s += "</div></div>";
  return s;
}

std::string render_block(const Block& b) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Chart>) return render_chart(x);
        if constexpr (std::is_same_v<T, Table>) return render_table(x);
        if constexpr (std::is_same_v<T, Confusion>) {
          return x.labels.size() > 2 ? render_confusion_grid(x) : render_confusion(x);
        }
        if constexpr (std::is_same_v<T, Gallery>) return render_gallery(x);
        if constexpr (std::is_same_v<T, Note>) {
          return fmt::format("<div class=\"note{}\">{}</div>", x.tag.empty() ? "" : " " + x.tag,
                             html_escape(x.text));
        }
      },
      b);
}

}  // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string base64(std::span<const std::uint8_t> bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::uint32_t b0 = bytes[i];
    const std::uint32_t b1 = i + 1 < bytes.size() ? bytes[i + 1] : 0u;
    const std::uint32_t b2 = i + 2 < bytes.size() ? bytes[i + 2] : 0u;
    const std::uint32_t v = (b0 << 16) | (b1 << 8) | b2;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string render_html(const Page& page) {
  std::string s;
  s += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  s += kHtmlMarker;  // octa wrote this file: a later run may replace it (output_guard.hpp)
  s += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'\">";
  s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  bool grid = false;
  for (const Section& sec : page.sections) {
    for (const Block& b : sec.blocks) {
      const auto* c = std::get_if<Confusion>(&b);
      grid = grid || (c != nullptr && c->labels.size() > 2);
    }
  }
  s += fmt::format("<title>{}</title><style>{}{}</style></head><body><div class=\"wrap\">",
                   html_escape(page.title), kCss, grid ? kCssGrid : "");
  s += "<header class=\"top\"><div>";
  s += fmt::format("<h1><span class=\"brand\">octa</span>{}</h1>", html_escape(page.title));
  if (!page.subtitle.empty()) {
    s += fmt::format("<div class=\"subtitle\">{}</div>", html_escape(page.subtitle));
  }
  s += "</div><div class=\"badges\">";
  for (const Cell& b : page.badges) s += cell_span(b, "badge");
  s += "</div></header>";
  if (!page.kpis.empty()) {
    s += "<div class=\"kpis\">";
    for (const Kpi& k : page.kpis) {
      s += fmt::format(
          "<div class=\"kpi\"><div class=\"label\">{}</div>{}<div "
          "class=\"kpi-note\">{}{}</div></div>",
          html_escape(k.label), cell_span(k.value, "value"), html_escape(k.note),
          k.note_value.text.empty() ? std::string() : cell_span(k.note_value, "nv"));
    }
    s += "</div>";
    if (!page.kpi_caption.empty()) {
      s += fmt::format("<p class=\"kpi-caption\">{}</p>", html_escape(page.kpi_caption));
    }
  }
  for (const Section& sec : page.sections) {
    s += fmt::format("<section id=\"{}\"><h2>{}</h2>", html_escape(sec.id), html_escape(sec.title));
    if (!sec.intro.empty()) s += fmt::format("<p class=\"intro\">{}</p>", html_escape(sec.intro));
    s += fmt::format("<div class=\"grid{}\">", sec.columns >= 2 ? " cols-2" : "");
    for (const Block& b : sec.blocks) s += render_block(b);
    s += "</div></section>";
  }
  if (!page.footer.empty()) s += fmt::format("<footer>{}</footer>", html_escape(page.footer));
  s += "</div></body></html>\n";
  return s;
}

}  // namespace octa::report
