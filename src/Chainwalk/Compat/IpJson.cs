using System.Globalization;
using System.Text;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Compat;

/// <summary>
/// <c>ip -j</c>: links, addresses and routes as iproute2 6.1 prints them in JSON (one line, keys in
/// the order of the text output, optional keys left out as there); with chainwalk's <c>--json</c> the same objects as
/// JSON Lines.
/// </summary>
internal static class IpJson
{
    private const string Forever = "4294967295";

    private static string Q(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            if (c is '"' or '\\') sb.Append('\\');
            sb.Append(c);
        }
        return sb.Append('"').ToString();
    }

    /// <summary>
    /// iproute2's one-line array for <c>ip -j</c>; for chainwalk's <c>--json</c> (JSON Lines) the same objects, one a line.
    /// </summary>
    private static string Wrap(List<string> items, bool lines) =>
        lines ? string.Concat(items.Select(i => i + "\n")) : "[" + string.Join(',', items) + "]\n";

    private static string Flags(VirtualHost host, Link l) =>
        "[" + string.Join(',', Network.Flags(host, l).Split(',').Select(Q)) + "]";

    private static void LinkFields(StringBuilder sb, VirtualHost host, Link l, bool brief)
    {
        if (!brief) sb.Append("\"ifindex\":").Append(l.Index.ToString(CultureInfo.InvariantCulture)).Append(',');
        if (l.Peer is not null && host.FindLink(l.Peer) is not null) sb.Append("\"link\":").Append(Q(l.Peer)).Append(',');
        sb.Append("\"ifname\":").Append(Q(l.Name));
    }

    private static void LinkDetails(StringBuilder sb, VirtualHost host, Link l, bool mode)
    {
        sb.Append(",\"flags\":").Append(Flags(host, l))
          .Append(",\"mtu\":").Append(l.Mtu.ToString(CultureInfo.InvariantCulture))
          .Append(",\"qdisc\":").Append(Q(Network.Qdisc(l)))
          .Append(",\"operstate\":").Append(Q(Network.OperState(host, l)));
        if (mode) sb.Append(",\"linkmode\":\"DEFAULT\"");
        sb.Append(",\"group\":\"default\",\"txqlen\":1000");
    }

    private static void LinkLayer(StringBuilder sb, Link l)
    {
        bool lo = l.Kind == "loopback";
        sb.Append(",\"link_type\":").Append(Q(lo ? "loopback" : "ether"))
          .Append(",\"address\":").Append(Q(l.Mac))
          .Append(",\"broadcast\":").Append(Q(lo ? "00:00:00:00:00:00" : "ff:ff:ff:ff:ff:ff"));
    }

    public static string Links(VirtualHost host, IEnumerable<Link> links, bool brief, bool lines = false)
    {
        var items = new List<string>();
        foreach (Link l in links)
        {
            var sb = new StringBuilder("{");
            LinkFields(sb, host, l, brief);
            if (brief)
            {
                sb.Append(",\"operstate\":").Append(Q(Network.OperState(host, l)))
                  .Append(",\"address\":").Append(Q(l.Mac))
                  .Append(",\"flags\":").Append(Flags(host, l));
            }
            else
            {
                LinkDetails(sb, host, l, mode: true);
                LinkLayer(sb, l);
            }
            items.Add(sb.Append('}').ToString());
        }
        return Wrap(items, lines);
    }

    public static string Addresses(VirtualHost host, IEnumerable<(Link Link, List<InterfaceAddress> Addrs)> links, IpFamily? family, bool brief, bool lines = false)
    {
        var items = new List<string>();
        foreach ((Link l, List<InterfaceAddress> addrs) in links)
        {
            var sb = new StringBuilder("{");
            LinkFields(sb, host, l, brief);
            if (brief)
            {
                sb.Append(",\"operstate\":").Append(Q(Network.OperState(host, l)));
            }
            else
            {
                LinkDetails(sb, host, l, mode: false);
                if (family is null) LinkLayer(sb, l);
            }
            sb.Append(",\"addr_info\":[");
            var infos = new List<string>();
            foreach (InterfaceAddress x in addrs)
            {
                var a = new StringBuilder("{");
                if (!brief) a.Append("\"family\":").Append(Q(x.Family == IpFamily.V4 ? "inet" : "inet6")).Append(',');
                a.Append("\"local\":").Append(Q(IpNet.FormatAddress(x.Address, x.Family)))
                 .Append(",\"prefixlen\":").Append(x.PrefixLength.ToString(CultureInfo.InvariantCulture));
                if (!brief)
                {
                    if (x.Broadcast is { } b) a.Append(",\"broadcast\":").Append(Q(IpNet.FormatAddress(b, x.Family)));
                    a.Append(",\"scope\":").Append(Q(Network.AddressScope(x)));
                    if (Network.IsSecondary(host, x)) a.Append(",\"secondary\":true");
                    if (x.NoDad) a.Append(",\"nodad\":true");
                    if (x.Tentative) a.Append(",\"tentative\":true");
                    if (x.Family == IpFamily.V4) a.Append(",\"label\":").Append(Q(x.Label ?? l.Name));
                    a.Append(",\"valid_life_time\":").Append(Forever).Append(",\"preferred_life_time\":").Append(Forever);
                }
                infos.Add(a.Append('}').ToString());
            }
            sb.Append(string.Join(',', infos)).Append("]}");
            items.Add(sb.ToString());
        }
        return Wrap(items, lines);
    }

    public static string Routes(IEnumerable<RouteView> routes, bool showDev, bool showTable, bool lines = false)
    {
        var items = new List<string>();
        foreach (RouteView r in routes)
        {
            var sb = new StringBuilder("{");
            if (r.Type != "unicast") sb.Append("\"type\":").Append(Q(r.Type)).Append(',');
            string dst = r.PrefixLength == 0 ? "default"
                : r.PrefixLength == r.Family.AddressBits() ? IpNet.FormatAddress(r.Prefix, r.Family)
                : IpNet.FormatAddress(r.Prefix, r.Family) + "/" + r.PrefixLength.ToString(CultureInfo.InvariantCulture);
            sb.Append("\"dst\":").Append(Q(dst));
            if (r.Via is { } via) sb.Append(",\"gateway\":").Append(Q(IpNet.FormatAddress(via, r.Family)));
            if (showDev && r.Device is not null) sb.Append(",\"dev\":").Append(Q(r.Device));
            if (showTable && r.Table != "main") sb.Append(",\"table\":").Append(Q(r.Table));
            if (r.Proto is not null) sb.Append(",\"protocol\":").Append(Q(r.Proto));
            if (r.Scope is not null) sb.Append(",\"scope\":").Append(Q(r.Scope));
            if (r.Src is { } src) sb.Append(",\"prefsrc\":").Append(Q(IpNet.FormatAddress(src, r.Family)));
            if (r.Family == IpFamily.V6 || r.Metric != 0) sb.Append(",\"metric\":").Append(r.Metric.ToString(CultureInfo.InvariantCulture));
            sb.Append(",\"flags\":[").Append(r.LinkDown ? "\"linkdown\"" : string.Empty).Append(']');
            if (r.Family == IpFamily.V6) sb.Append(",\"pref\":\"medium\"");
            items.Add(sb.Append('}').ToString());
        }
        return Wrap(items, lines);
    }
}
