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
    /// <summary>The text ip prints (stdout when Rc is 0, else stderr) and its exit code.</summary>
    public static (string Text, int Rc) Answer(VirtualHost host, IpFamily f, UInt128 dst, string dstText,
        string? from, UInt128? fromAddress, string? iif, string? oif, uint mark)
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
        sb.Append(r.Type switch
        {
            RouteType.Local => "local ",
            RouteType.Broadcast => "broadcast ",
            RouteType.Multicast => "multicast ",
            _ => string.Empty,
        });
        sb.Append(dstText).Append(' ');
        if (f == IpFamily.V4)
        {
            if (from is not null && !(iif is not null && from == "0.0.0.0")) sb.Append("from ").Append(from).Append(' ');
            if (r.Gateway is { } gw) sb.Append("via ").Append(A(gw)).Append(' ');
            sb.Append("dev ").Append(r.Device).Append(' ');
            if (iif is not null && r.Type == RouteType.Multicast) sb.Append("rt_offload_failed ");
            if (r.Route?.Table is { } table && table is not ("main" or "local")) sb.Append("table ").Append(table).Append(' ');
            string flags = r.Type switch
            {
                RouteType.Local => "<local> ",
                RouteType.Broadcast => "<local,brd> ",
                RouteType.Multicast => iif is null ? "<mc> " : "<local,mc> ",
                _ when r.Device == "lo" && iif is null => "<local> ",
                _ => redirect ? "<redirect> " : string.Empty,
            };
            if (iif is not null)
            {
                sb.Append("\n    cache ").Append(flags).Append("iif ").Append(iif).Append(" \n");
                return (sb.ToString(), 0);
            }
            if (from is null && r.PreferredSource is { } s) sb.Append("src ").Append(A(s)).Append(' ');
            if (r.Type == RouteType.Multicast) sb.Append("rt_offload_failed ");
            if (mark != 0) sb.Append("mark ").Append(mark.ToString(CultureInfo.InvariantCulture)).Append(' ');
            sb.Append("uid 0 \n    cache ").Append(flags).Append('\n');
            return (sb.ToString(), 0);
        }
        sb.Append("from ").Append(from ?? "::").Append(' ');
        if (r.Gateway is { } gw6) sb.Append("via ").Append(A(gw6)).Append(' ');
        sb.Append("dev ").Append(r.Device).Append(' ');
        RouteView? rv = r.Route;
        if (rv?.Table is "local") sb.Append("table local ");
        if (rv?.Proto is { } proto) sb.Append("proto ").Append(proto).Append(' ');
        if (iif is null && r.PreferredSource is { } s6) sb.Append("src ").Append(A(s6)).Append(' ');
        sb.Append("metric ").Append((rv?.Metric ?? 0).ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (iif is not null) sb.Append("iif ").Append(iif).Append(' ');
        sb.Append("pref medium\n");
        return (sb.ToString(), 0);
    }
}
