using System.Globalization;
using System.Text;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;

namespace Chainwalk.Compat;

/// <summary>
/// <c>ip route get</c>: asks <see cref="RouteLookup"/> (output route, or the input decision with <c>iif</c>) and prints
/// the answer as iproute2 6.1 does, with the kernel's errors ("RTNETLINK answers: …", exit 2).
/// </summary>
public static class IpRouteGet
{
    /// <summary>
    /// The text ip prints (stdout when Rc is 0, else stderr) and its exit code; with <paramref name="json"/> the answer
    /// as <c>ip -j route get</c> prints it (a one-object array; <paramref name="jsonLines"/>: the object alone, for
    /// chainwalk's --json). The JSON keys follow the text's words in order, with "flags" always there (recorded from
    /// iproute2 6.1 in a namespace: IPv4 unicast/local/broadcast/multicast, from, mark, iif; IPv6 the same).
    /// </summary>
    public static (string Text, int Rc) Answer(VirtualHost host, IpFamily f, UInt128 dst, string dstText,
        string? from, UInt128? fromAddress, string? iif, string? oif, uint mark, bool json = false, bool jsonLines = false)
    {
        var q = new RouteQuery(f, dst) { Source = fromAddress, InputInterface = iif, OutputInterface = oif, Mark = mark };
        RouteResult r;
        bool redirect = false;
        if (iif is not null)
        {
            InputDecision d = RouteLookup.Input(host, q);
            r = d.Route;
            redirect = d.Redirect;
        }
        else
        {
            r = RouteLookup.Output(host, q);
        }
        if (r.Error == RouteError.NoSuchDevice) return ($"Cannot find device \"{iif ?? oif}\"\n", 1);
        if (!r.Ok) return ("RTNETLINK answers: " + r.ErrorMessage + "\n", 2);
        string A(UInt128 x) => IpNet.FormatAddress(x, f);
        var sb = new StringBuilder();
        var js = new StringBuilder("{");
        void Key(string key, string value, bool quoted = true)
        {
            if (js.Length > 1) js.Append(',');
            js.Append('"').Append(key).Append("\":");
            if (quoted) js.Append('"').Append(value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)).Append('"');
            else js.Append(value);
        }
        string? type = r.Type switch
        {
            RouteType.Local => "local",
            RouteType.Broadcast => "broadcast",
            RouteType.Multicast => "multicast",
            _ => null,
        };
        if (type is not null)
        {
            sb.Append(type).Append(' ');
            Key("type", type);
        }
        sb.Append(dstText).Append(' ');
        Key("dst", dstText);
        string Finish(string text) => !json ? text : jsonLines ? js.Append("}\n").ToString() : "[" + js.Append("}]\n").ToString();
        if (f == IpFamily.V4)
        {
            if (from is not null && !(iif is not null && from == "0.0.0.0"))
            {
                sb.Append("from ").Append(from).Append(' ');
                Key("from", from);
            }
            if (r.Gateway is { } gw)
            {
                sb.Append("via ").Append(A(gw)).Append(' ');
                Key("gateway", A(gw));
            }
            sb.Append("dev ").Append(r.Device).Append(' ');
            Key("dev", r.Device ?? "");
            bool offloadFailed = r.Type == RouteType.Multicast;
            if (iif is not null && offloadFailed) sb.Append("rt_offload_failed ");
            if (r.Route?.Table is { } table && table is not ("main" or "local"))
            {
                sb.Append("table ").Append(table).Append(' ');
                Key("table", table);
            }
            string flags = r.Type switch
            {
                RouteType.Local => "<local> ",
                RouteType.Broadcast => "<local,brd> ",
                RouteType.Multicast => iif is null ? "<mc> " : "<local,mc> ",
                _ when r.Device == "lo" && iif is null => "<local> ",
                _ => redirect ? "<redirect> " : string.Empty,
            };
            string cache = flags.Length == 0 ? "[]" : "[" + string.Join(',', flags.Trim(' ', '<', '>').Split(',').Select(x => "\"" + x + "\"")) + "]";
            string rtFlags = offloadFailed ? "[\"rt_offload_failed\"]" : "[]";
            if (iif is not null)
            {
                sb.Append("\n    cache ").Append(flags).Append("iif ").Append(iif).Append(" \n");
                Key("flags", rtFlags, quoted: false);
                Key("cache", cache, quoted: false);
                Key("iif", iif);
                return (Finish(sb.ToString()), 0);
            }
            if (from is null && r.PreferredSource is { } s)
            {
                sb.Append("src ").Append(A(s)).Append(' ');
                Key("prefsrc", A(s));
            }
            if (offloadFailed) sb.Append("rt_offload_failed ");
            Key("flags", rtFlags, quoted: false);
            if (mark != 0)
            {
                sb.Append("mark ").Append(mark.ToString(CultureInfo.InvariantCulture)).Append(' ');
                Key("mark", mark.ToString(CultureInfo.InvariantCulture), quoted: false);
            }
            sb.Append("uid 0 \n    cache ").Append(flags).Append('\n');
            Key("uid", "0", quoted: false);
            Key("cache", cache, quoted: false);
            return (Finish(sb.ToString()), 0);
        }
        sb.Append("from ").Append(from ?? "::").Append(' ');
        Key("from", from ?? "::");
        if (r.Gateway is { } gw6)
        {
            sb.Append("via ").Append(A(gw6)).Append(' ');
            Key("gateway", A(gw6));
        }
        sb.Append("dev ").Append(r.Device).Append(' ');
        Key("dev", r.Device ?? "");
        RouteView? rv = r.Route;
        if (rv?.Table is "local")
        {
            sb.Append("table local ");
            Key("table", "local");
        }
        if (rv?.Proto is { } proto)
        {
            sb.Append("proto ").Append(proto).Append(' ');
            Key("protocol", proto);
        }
        if (iif is null && r.PreferredSource is { } s6)
        {
            sb.Append("src ").Append(A(s6)).Append(' ');
            Key("prefsrc", A(s6));
        }
        string metric = (rv?.Metric ?? 0).ToString(CultureInfo.InvariantCulture);
        sb.Append("metric ").Append(metric).Append(' ');
        Key("metric", metric, quoted: false);
        Key("flags", "[]", quoted: false);
        if (iif is not null)
        {
            sb.Append("iif ").Append(iif).Append(' ');
            Key("iif", iif);
        }
        sb.Append("pref medium\n");
        Key("pref", "medium");
        return (Finish(sb.ToString()), 0);
    }
}
