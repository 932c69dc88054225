#include "cmd/bench_report.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace hv::bench {
namespace {

std::string variant_title(const VariantResult& v)
{
    return v.workload->name + (v.variant->mode.empty() ? "" : " (" + v.variant->mode + ")");
}

std::string us(double v)
{
    return v >= 1000 ? fmt::format("{:.0f}", v) : fmt::format("{:.1f}", v);
}

const PathResult* find_path(const VariantResult& v, const std::string& path)
{
    for (const auto& p : v.paths)
        if (p.path == path)
            return &p;
    return nullptr;
}

double p50_of(const PathResult* p, const std::string& series)
{
    if (!p || !p->error.empty())
        return 0;
    auto it = p->us.find(series);
    return it == p->us.end() || it->second.empty() ? 0 : summarise(it->second).p50;
}

void print_targets(std::FILE* f, const Report& r)
{
    std::fprintf(f, "\nTargets, p50 ratios per series in this run (the kernel backend against "
                    "QEMU, the slowest model against the kernel backend):\n\n");
    std::fprintf(
        f, "| series | kernel p50 us | QEMU p50 us | kernel / QEMU | slowest model / kernel |\n");
    std::fprintf(f, "|---|---|---|---|---|\n");
    for (const auto& v : r.results) {
        for (const auto& s : v.variant->series) {
            const PathResult* kernel = find_path(v, "kernel");
            const PathResult* qemu = nullptr;
            for (const auto& p : v.paths)
                if (p.qemu)
                    qemu = &p;
            double k = p50_of(kernel, s), q = p50_of(qemu, s);
            double worst = 0;
            std::string worst_path;
            for (const auto& p : v.paths) {
                if (p.qemu || p.path == "kernel")
                    continue;
                double m = p50_of(&p, s);
                if (m > worst) {
                    worst = m;
                    worst_path = p.path;
                }
            }
            std::fprintf(f, "| %s | %s | %s | %s | %s |\n", s.c_str(), k != 0 ? us(k).c_str() : "-",
                         q != 0 ? us(q).c_str() : "-",
                         k != 0 && q != 0 ? fmt::format("{:.2f}", k / q).c_str() : "-",
                         k != 0 && worst != 0
                             ? fmt::format("{:.2f} ({})", worst / k, worst_path).c_str()
                             : "-");
        }
    }
}

}  // namespace

void print_tables(std::FILE* f, const Report& r)
{
    const char* last_workload = "";
    for (const auto& v : r.results) {
        if (v.workload->name != last_workload) {
            last_workload = v.workload->name.c_str();
            std::fprintf(f, "\n%s: %s (%u vCPU%s)\n", v.workload->name.c_str(),
                         v.workload->description.c_str(), v.workload->vcpus,
                         v.workload->vcpus == 1 ? "" : "s");
        }
        std::fprintf(f,
                     "\n%s, %u samples x %u runs per path, latency in us, exits per 1,000 "
                     "interrupts\n\n",
                     variant_title(v).c_str(), r.plan.iterations, r.plan.repeat);
        std::fprintf(f, "| path | series | count | min | p50 | p99 | p99.9 | max | userspace exits "
                        "| architectural exits |\n");
        std::fprintf(f, "|---|---|---|---|---|---|---|---|---|---|\n");
        for (const auto& p : v.paths) {
            if (!p.error.empty()) {
                std::fprintf(f, "| %s | - | FAILED: %s | | | | | | | |\n", p.path.c_str(),
                             p.error.c_str());
                continue;
            }
            bool first = true;
            for (const auto& s : p.series_order) {
                auto it = p.us.find(s);
                std::string exits_u = p.qemu ? "n/a" : format_rates(p.exits.userspace);
                std::string exits_a = p.qemu               ? "n/a"
                                      : p.path == "kernel" ? "in KVM"
                                                           : format_rates(p.exits.architectural);
                if (!first)
                    exits_u = exits_a = "";
                first = false;
                if (it == p.us.end() || it->second.empty()) {
                    auto sk = p.skipped.find(s);
                    std::fprintf(f, "| %s | %s | %s | | | | | | %s | %s |\n", p.path.c_str(),
                                 s.c_str(),
                                 sk == p.skipped.end() ? "no samples" : sk->second.c_str(),
                                 exits_u.c_str(), exits_a.c_str());
                    continue;
                }
                Summary m = summarise(it->second);
                std::fprintf(f, "| %s | %s | %zu | %s | %s | %s | %s | %s | %s | %s |\n",
                             p.path.c_str(), s.c_str(), m.count, us(m.min).c_str(),
                             us(m.p50).c_str(), us(m.p99).c_str(), us(m.p999).c_str(),
                             us(m.max).c_str(), exits_u.c_str(), exits_a.c_str());
            }
        }
        // The guests' notes, one line per path over its runs, where any is not zero.
        for (const auto& p : v.paths) {
            bool nonzero = false;
            std::string joined;
            for (const auto& n : p.notes) {
                auto digit = n.find_first_of("0123456789", n.find(':'));
                nonzero |= digit != std::string::npos && n[digit] != '0';
                joined += (joined.empty() ? "" : "; ") + n;
            }
            if (nonzero)
                std::fprintf(f, "- %s (%d runs): %s\n", p.path.c_str(), p.runs, joined.c_str());
        }
    }
    for (const auto& [w, why] : r.unavailable)
        std::fprintf(f, "\n%s: %s\n", w.c_str(), why.c_str());
    if (!r.qemu_note.empty())
        std::fprintf(f, "\nQEMU column: %s\n", r.qemu_note.c_str());
    if (!r.results.empty())
        print_targets(f, r);
}

nlohmann::json to_json(const Report& r, const nlohmann::json& meta)
{
    nlohmann::json j = meta;
    j["iterations"] = r.plan.iterations;
    j["repeat"] = r.plan.repeat;
    j["tsc_khz"] = r.plan.tsc_khz;
    j["qemu"] = r.qemu_note.empty() ? nlohmann::json(r.plan.qemu) : nlohmann::json(r.qemu_note);
    auto& results = j["results"] = nlohmann::json::array();
    for (const auto& v : r.results) {
        nlohmann::json jv = {{"workload", v.workload->name},
                             {"mode", v.variant->mode},
                             {"description", v.workload->description},
                             {"vcpus", v.workload->vcpus},
                             {"interrupts_per_sample", v.variant->irqs_per_sample},
                             {"paths", nlohmann::json::array()}};
        for (const auto& p : v.paths) {
            nlohmann::json jp = {
                {"path", p.path}, {"qemu", p.qemu}, {"runs", p.runs}, {"ok", p.error.empty()}};
            if (!p.error.empty())
                jp["error"] = p.error;
            if (!p.notes.empty())
                jp["notes"] = p.notes;
            if (p.have_exits)
                jp["exits_per_1000_interrupts"] = {{"userspace", p.exits.userspace},
                                                   {"architectural", p.exits.architectural}};
            auto& series = jp["series"] = nlohmann::json::object();
            for (const auto& s : p.series_order) {
                auto it = p.us.find(s);
                if (it == p.us.end() || it->second.empty()) {
                    auto sk = p.skipped.find(s);
                    series[s] = {{"count", 0},
                                 {"skipped", sk == p.skipped.end() ? "no samples" : sk->second}};
                    continue;
                }
                Summary m = summarise(it->second);
                series[s] = {{"unit", "us"}, {"count", m.count}, {"min", m.min}, {"p50", m.p50},
                             {"p99", m.p99}, {"p999", m.p999},   {"max", m.max}};
            }
            jv["paths"].push_back(std::move(jp));
        }
        results.push_back(std::move(jv));
    }
    auto& un = j["unavailable"] = nlohmann::json::object();
    for (const auto& [w, why] : r.unavailable)
        un[w] = why;
    return j;
}

namespace {

std::string xml_escape(const std::string& s)
{
    std::string o;
    for (char c : s) {
        switch (c) {
        case '<':
            o += "&lt;";
            break;
        case '>':
            o += "&gt;";
            break;
        case '&':
            o += "&amp;";
            break;
        case '"':
            o += "&quot;";
            break;
        default:
            o += c;
        }
    }
    return o;
}

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                    "#bcbd22", "#17becf", "#000000"};

}  // namespace

std::string to_svg(const Report& r, const std::string& title)
{
    // Panels: one per (variant, series) with samples; 2 per row.
    struct Panel {
        std::string title;
        std::vector<std::pair<std::string, const std::vector<double>*>> lines;
    };
    std::vector<Panel> panels;
    std::vector<std::string> paths;  // colour per path, stable across panels
    for (const auto& v : r.results)
        for (const auto& s : v.variant->series) {
            Panel p{variant_title(v) + ": " + s, {}};
            for (const auto& pr : v.paths) {
                auto it = pr.us.find(s);
                if (!pr.error.empty() || it == pr.us.end() || it->second.empty())
                    continue;
                p.lines.push_back({pr.path, &it->second});
                if (std::find(paths.begin(), paths.end(), pr.path) == paths.end())
                    paths.push_back(pr.path);
            }
            if (!p.lines.empty())
                panels.push_back(std::move(p));
        }
    const int pw = 520, ph = 300, ml = 60, mr = 20, mt = 30, mb = 45, cols = 2;
    const int legend_h = 24 + 16 * static_cast<int>((paths.size() + 3) / 4);
    const int rows = static_cast<int>((panels.size() + cols - 1) / cols);
    const int width = cols * pw, height = 40 + legend_h + std::max(rows, 1) * ph;
    std::string o =
        fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
                    "viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"11\">\n"
                    "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n"
                    "<text x=\"10\" y=\"22\" font-size=\"15\">{}</text>\n",
                    width, height, width, height, width, height, xml_escape(title));
    auto colour = [&](const std::string& path) {
        auto i =
            static_cast<std::size_t>(std::find(paths.begin(), paths.end(), path) - paths.begin());
        return kPalette[i % std::size(kPalette)];
    };
    for (std::size_t i = 0; i < paths.size(); ++i) {
        int x = 10 + static_cast<int>(i % 4) * 250, y = 44 + static_cast<int>(i / 4) * 16;
        o +=
            fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" "
                        "stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                        x, y - 4, x + 24, y - 4, colour(paths[i]), x + 30, y, xml_escape(paths[i]));
    }
    for (std::size_t n = 0; n < panels.size(); ++n) {
        const Panel& p = panels[n];
        int ox = static_cast<int>(n % cols) * pw,
            oy = 40 + legend_h + static_cast<int>(n / cols) * ph;
        int x0 = ox + ml, x1 = ox + pw - mr, y0 = oy + ph - mb, y1 = oy + mt;
        double lo = 1e300, hi = 0;
        for (const auto& l : p.lines) {
            auto [mn, mx] = std::minmax_element(l.second->begin(), l.second->end());
            lo = std::min(lo, std::max(*mn, 0.1));
            hi = std::max(hi, *mx);
        }
        double llo = std::floor(std::log10(lo)),
               lhi = std::ceil(std::log10(std::max(hi, lo * 1.01)));
        if (lhi <= llo)
            lhi = llo + 1;
        auto X = [&](double v) {
            double lv = std::log10(std::max(v, 0.1));
            return x0 + (lv - llo) / (lhi - llo) * (x1 - x0);
        };
        auto Y = [&](double q) { return y0 - q * (y0 - y1); };
        o += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>\n", x0, oy + 18,
                         xml_escape(p.title));
        o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                         "stroke=\"#888\"/>\n",
                         x0, y1, x1 - x0, y0 - y1);
        for (double d = llo; d <= lhi; d += 1) {
            double x = X(std::pow(10.0, d));
            o += fmt::format(
                "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#ddd\"/>"
                "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                x, y1, x, y0, x, y0 + 14, fmt::format("{:g}", std::pow(10.0, d)));
        }
        for (double q : {0.0, 0.5, 0.9, 0.99, 1.0})
            o += fmt::format(
                "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eee\"/>"
                "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n",
                x0, Y(q), x1, Y(q), x0 - 4, Y(q) + 4, q);
        o +=
            fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency, us (log)</text>\n",
                        (x0 + x1) / 2, y0 + 30);
        o += fmt::format("<text x=\"{}\" y=\"{}\" transform=\"rotate(-90 {} {})\" "
                         "text-anchor=\"middle\">fraction of samples</text>\n",
                         ox + 16, (y0 + y1) / 2, ox + 16, (y0 + y1) / 2);
        for (const auto& [path, samples] : p.lines) {
            std::vector<double> v = *samples;
            std::sort(v.begin(), v.end());
            std::string pts;
            // At most ~150 points per line: every k-th sample of the sorted set, plus the last.
            std::size_t k = std::max<std::size_t>(1, v.size() / 150);
            for (std::size_t i = 0; i < v.size(); i += k)
                pts += fmt::format("{:.1f},{:.1f} ", X(v[i]),
                                   Y(static_cast<double>(i + 1) / static_cast<double>(v.size())));
            pts += fmt::format("{:.1f},{:.1f}", X(v.back()), Y(1.0));
            o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" "
                             "points=\"{}\"/>\n",
                             colour(path), pts);
        }
    }
    o += "</svg>\n";
    return o;
}

}  // namespace hv::bench
