// engine/report/html.hpp: a Page (page.hpp) as one self-contained HTML file: inline CSS, charts as
// inline SVG, images as data: URIs, no script, no font or file fetched from anywhere. A Content
// Security Policy in the page itself (default-src 'none'; images only from data:) makes a browser
// refuse, and report on its console, any request the page might still try to make.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/report/page.hpp"

namespace octa::report {

std::string render_html(const Page& page);

// Helpers the renderer uses, exposed for tests and other pages.
std::string html_escape(std::string_view s);
std::string base64(std::span<const std::uint8_t> bytes);
std::string with_commas(std::int64_t n);  // 10000 -> "10,000"

}  // namespace octa::report
