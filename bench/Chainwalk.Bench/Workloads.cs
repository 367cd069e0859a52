using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace Chainwalk.Bench;

/// <summary>One ClassBench trace header: addresses, ports, protocol (the generator's FILTER_NO is not kept).</summary>
public readonly record struct TraceHeader(uint Source, uint Destination, ushort SourcePort, ushort DestinationPort, byte Protocol);

/// <summary>
/// ClassBench filter sets (../shared/corpus/classbench, format in its README) as iptables-restore input:
/// one <c>-A FORWARD -s SRC -d DST [-p P [--sport] [--dport]] -j ACCEPT</c> per filter, first match wins.
/// A filter with port ranges but any protocol keeps its ranges as a tcp rule followed by a udp rule (the
/// ports of other protocols are not ports); a filter naming another protocol with ranges keeps only the
/// protocol (iptables has no port match for it). Both are counted.
/// </summary>
public static class ClassBench
{
    public sealed class Converted
    {
        public required string Restore { get; init; }
        public required int Filters { get; init; }
        public required int Rules { get; init; }
        public required int SplitIntoTcpUdp { get; init; }
        public required int PortsDropped { get; init; }
    }

    /// <summary>The files of a ClassBench archive (name → text), read from the .tgz.</summary>
    public static Dictionary<string, string> ReadArchive(string tgz)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        using var gz = new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } e)
        {
            if (e.DataStream is null) continue;
            using var r = new StreamReader(e.DataStream, Encoding.ASCII);
            files[Path.GetFileName(e.Name)] = r.ReadToEnd();
        }
        return files;
    }

    public static Converted Convert(string filters, string chain = "FORWARD")
    {
        var sb = new StringBuilder(filters.Length * 2);
        sb.Append("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        int n = 0, rules = 0, split = 0, dropped = 0;
        foreach (string raw in filters.Split('\n'))
        {
            string line = raw.Trim();
            if (line.Length == 0) continue;
            if (line[0] == '@') line = line[1..];
            string[] f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 5) continue;
            n++;
            (int slo, int shi) = Range(f[2]);
            (int dlo, int dhi) = Range(f[3]);
            string[] pm = f[4].Split('/');
            int proto = System.Convert.ToInt32(pm[0], 16), mask = System.Convert.ToInt32(pm[1], 16);
            string head = $"-A {chain} -s {f[0]} -d {f[1]}";
            string ports = (slo == 0 && shi == 65535 ? "" : $" --sport {slo}:{shi}") + (dlo == 0 && dhi == 65535 ? "" : $" --dport {dlo}:{dhi}");
            if (mask == 0)
            {
                if (ports.Length == 0)
                {
                    sb.Append(head).Append(" -j ACCEPT\n");
                    rules++;
                }
                else
                {
                    sb.Append(head).Append(" -p tcp").Append(ports).Append(" -j ACCEPT\n");
                    sb.Append(head).Append(" -p udp").Append(ports).Append(" -j ACCEPT\n");
                    rules += 2;
                    split++;
                }
            }
            else if (proto is 6 or 17)
            {
                sb.Append(head).Append(proto == 6 ? " -p tcp" : " -p udp").Append(ports).Append(" -j ACCEPT\n");
                rules++;
            }
            else
            {
                if (ports.Length != 0) dropped++;
                sb.Append(head).Append(" -p ").Append(proto.ToString(CultureInfo.InvariantCulture)).Append(" -j ACCEPT\n");
                rules++;
            }
        }
        sb.Append("COMMIT\n");
        return new Converted { Restore = sb.ToString(), Filters = n, Rules = rules, SplitIntoTcpUdp = split, PortsDropped = dropped };
    }

    private static (int, int) Range(string text)
    {
        string[] p = text.Split(':');
        return (int.Parse(p[0].Trim(), CultureInfo.InvariantCulture), int.Parse(p[1].Trim(), CultureInfo.InvariantCulture));
    }

    public static TraceHeader[] ReadTrace(string text, int max = int.MaxValue)
    {
        var list = new List<TraceHeader>();
        foreach (string line in text.Split('\n'))
        {
            if (list.Count >= max) break;
            string[] f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 5) continue;
            list.Add(new TraceHeader(uint.Parse(f[0], CultureInfo.InvariantCulture), uint.Parse(f[1], CultureInfo.InvariantCulture),
                (ushort)uint.Parse(f[2], CultureInfo.InvariantCulture), (ushort)uint.Parse(f[3], CultureInfo.InvariantCulture),
                (byte)uint.Parse(f[4], CultureInfo.InvariantCulture)));
        }
        return list.ToArray();
    }

    /// <summary>The header as an IPv4 packet: a TCP or UDP header with its ports, else 8 bytes of payload.</summary>
    public static byte[] Packet(TraceHeader h)
    {
        var b = Chainwalk.Wire.PacketBuilder.Ipv4(h.Source, h.Destination);
        return h.Protocol switch
        {
            6 => b.Tcp(h.SourcePort, h.DestinationPort).Build(),
            17 => b.Udp(h.SourcePort, h.DestinationPort).Build(),
            _ => b.Protocol(h.Protocol).PayloadLength(8).Build(),
        };
    }
}

/// <summary>
/// Rule sets shaped as kube-proxy's iptables mode writes them (pkg/proxy/iptables/proxier.go; the corpus
/// file k8s/proxier-test-overall-rules.rules shows the shape): per service a cluster-IP rule in
/// KUBE-SERVICES jumping to KUBE-SVC-*, which masquerades off-cluster sources and picks one of its
/// endpoints with statistic --mode random, each KUBE-SEP-* marking hairpin traffic and DNATing; the
/// filter table's KUBE-SERVICES / KUBE-FORWARD / KUBE-FIREWALL; the nodeports rule last.
/// </summary>
public static class KubeProxyRules
{
    public readonly record struct Service(uint ClusterIp, ushort Port, uint[] Endpoints);

    public static (string Restore, Service[] Services, int Rules) Generate(int services, int seed = 1, int maxEndpoints = 10)
    {
        var rnd = new Random(seed);
        var svcs = new Service[services];
        for (int s = 0; s < services; s++)
        {
            uint ip = 0xAC1E_0000u + (uint)s + 1; // 172.30.0.0/16 (the service CIDR of the proxier tests)
            int k = rnd.Next(1, maxEndpoints + 1);
            var eps = new uint[k];
            for (int e = 0; e < k; e++) eps[e] = 0x0AB4_0000u + (uint)rnd.Next(1, 1 << 16); // 10.180.0.0/16 pods
            svcs[s] = new Service(ip, (ushort)(rnd.Next(2) == 0 ? 80 : rnd.Next(1024, 32768)), eps);
        }
        var sb = new StringBuilder(services * 1200);
        int rules = 0;
        sb.Append("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        sb.Append(":KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n");
        string[] filter =
        [
            "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
            "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
            "-A INPUT -j KUBE-FIREWALL",
            "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
            "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
            "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A OUTPUT -j KUBE-FIREWALL",
            "-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ];
        foreach (string l in filter) sb.Append(l).Append('\n');
        rules += filter.Length;
        sb.Append("COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
        sb.Append(":KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n");
        for (int s = 0; s < services; s++)
        {
            sb.Append(":KUBE-SVC-").Append(Hash("svc", s)).Append(" - [0:0]\n");
            for (int e = 0; e < svcs[s].Endpoints.Length; e++) sb.Append(":KUBE-SEP-").Append(Hash("sep", s * 16 + e)).Append(" - [0:0]\n");
        }
        string[] nat =
        [
            "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
            "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE",
        ];
        foreach (string l in nat) sb.Append(l).Append('\n');
        rules += nat.Length;
        for (int s = 0; s < services; s++)
        {
            Service v = svcs[s];
            string name = $"ns{s % 97}/svc{s}:p{v.Port}";
            sb.Append("-A KUBE-SERVICES -d ").Append(Ip(v.ClusterIp)).Append("/32 -p tcp -m comment --comment \"").Append(name)
              .Append(" cluster IP\" -m tcp --dport ").Append(v.Port).Append(" -j KUBE-SVC-").Append(Hash("svc", s)).Append('\n');
            rules++;
        }
        sb.Append("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
        rules++;
        for (int s = 0; s < services; s++)
        {
            Service v = svcs[s];
            string name = $"ns{s % 97}/svc{s}:p{v.Port}";
            string svc = "KUBE-SVC-" + Hash("svc", s);
            sb.Append("-A ").Append(svc).Append(" ! -s 10.244.0.0/16 -d ").Append(Ip(v.ClusterIp)).Append("/32 -p tcp -m comment --comment \"")
              .Append(name).Append(" cluster IP\" -m tcp --dport ").Append(v.Port).Append(" -j KUBE-MARK-MASQ\n");
            rules++;
            int k = v.Endpoints.Length;
            for (int e = 0; e < k; e++)
            {
                string sep = "KUBE-SEP-" + Hash("sep", s * 16 + e);
                string ep = Ip(v.Endpoints[e]);
                sb.Append("-A ").Append(svc).Append(" -m comment --comment \"").Append(name).Append(" -> ").Append(ep).Append(':').Append(v.Port).Append('"');
                if (e < k - 1)
                {
                    double p = 1.0 / (k - e);
                    sb.Append(" -m statistic --mode random --probability ").Append(p.ToString("F10", CultureInfo.InvariantCulture));
                }
                sb.Append(" -j ").Append(sep).Append('\n');
                sb.Append("-A ").Append(sep).Append(" -s ").Append(ep).Append("/32 -m comment --comment \"").Append(name).Append("\" -j KUBE-MARK-MASQ\n");
                sb.Append("-A ").Append(sep).Append(" -p tcp -m comment --comment \"").Append(name).Append("\" -m tcp -j DNAT --to-destination ")
                  .Append(ep).Append(':').Append(v.Port).Append('\n');
                rules += 3;
            }
        }
        sb.Append("COMMIT\n");
        return (sb.ToString(), svcs, rules);
    }

    /// <summary>A chain-name suffix as kube-proxy makes them (16 base32 characters of a hash).</summary>
    private static string Hash(string kind, int n)
    {
        byte[] h = System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(kind + n.ToString(CultureInfo.InvariantCulture)));
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        var c = new char[16];
        for (int i = 0; i < 16; i++) c[i] = alphabet[h[i] & 31];
        return new string(c);
    }

    public static string Ip(uint a) => $"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}";
}
