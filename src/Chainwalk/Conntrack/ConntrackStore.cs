using System.Globalization;
using System.Text;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Conntrack;

/// <summary>
/// The conntrack table on disk (<c>conntrack.state</c> in the host directory, docs/host-state.md), so that
/// successive commands see one kernel: one line per confirmed entry with both tuples, status, the absolute
/// timeout on the host clock, marks, labels, zone, counters and the TCP tracker's window state.
/// </summary>
public static class ConntrackStore
{
    public const string FileName = "conntrack.state";

    private static string D(ulong v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>The table as text (live entries only, oldest first).</summary>
    public static string Format(ConntrackTable table, double now)
    {
        table.Expire(now);
        var sb = new StringBuilder();
        sb.Append("# Chainwalk conntrack table, format 1 (see docs/host-state.md)\n");
        foreach (ConnEntry ct in table.Entries)
        {
            ConnTuple o = ct.Original, r = ct.Reply;
            sb.Append("ct ").Append(o.Family == IpFamily.V4 ? "inet" : "inet6").Append(' ').Append(D(o.Protocol));
            AppendTuple(sb, o);
            AppendTuple(sb, r);
            sb.Append(" status=").Append(D((uint)ct.Status));
            sb.Append(" timeout=").Append(ct.Timeout.ToString("R", CultureInfo.InvariantCulture));
            sb.Append(" mark=").Append(D(ct.Mark)).Append(" secmark=").Append(D(ct.Secmark));
            sb.Append(" labels=").Append(ct.Labels.ToString("x", CultureInfo.InvariantCulture));
            sb.Append(" zone=").Append(D(ct.Zone)).Append(" zonedir=").Append(D(ct.ZoneDirections));
            sb.Append(" udpstream=").Append(ct.UdpStreamAt.ToString("R", CultureInfo.InvariantCulture));
            sb.Append(" events=").Append(D(ct.EventMask));
            if (ct.Helper is { Length: > 0 } h) sb.Append(" helper=").Append(h);
            if (ct.MasqueradeDevice is { Length: > 0 } masq) sb.Append(" masq=").Append(masq);
            if (ct.Counters is { } c) sb.Append(" acct=").Append(D(c[0].Packets)).Append(',').Append(D(c[0].Bytes)).Append(',').Append(D(c[1].Packets)).Append(',').Append(D(c[1].Bytes));
            if (ct.HasTcp)
            {
                ref TcpConnState t = ref ct.Tcp;
                sb.Append(" tcp=").Append(D((byte)t.State)).Append(',').Append(D(t.LastDir)).Append(',').Append(D(t.LastIndex)).Append(',')
                  .Append(D(t.LastSeq)).Append(',').Append(D(t.LastAck)).Append(',').Append(D(t.LastEnd)).Append(',').Append(D(t.LastWin)).Append(',')
                  .Append(D(t.LastWscale)).Append(',').Append(D(t.LastFlags)).Append(',').Append(D(t.Retrans));
                foreach (TcpSide s in t.Seen)
                {
                    sb.Append(',').Append(D(s.End)).Append(',').Append(D(s.MaxEnd)).Append(',').Append(D(s.MaxWin)).Append(',')
                      .Append(D(s.MaxAck)).Append(',').Append(D(s.Scale)).Append(',').Append(D(s.Flags));
                }
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static void AppendTuple(StringBuilder sb, ConnTuple t) =>
        sb.Append(' ').Append(IpNet.FormatAddress(t.Source, t.Family)).Append(' ').Append(IpNet.FormatAddress(t.Destination, t.Family))
          .Append(' ').Append(D(t.SourcePort)).Append(' ').Append(D(t.DestinationPort));

    /// <summary>Reads what <see cref="Format"/> wrote; throws FormatException on a bad line.</summary>
    public static ConntrackTable Parse(string text)
    {
        var table = new ConntrackTable();
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            string[] w = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (w.Length < 11 || w[0] != "ct") throw new FormatException("conntrack.state: bad line: " + line);
            IpFamily fam = w[1] == "inet" ? IpFamily.V4 : w[1] == "inet6" ? IpFamily.V6 : throw new FormatException("conntrack.state: bad family: " + line);
            byte proto = byte.Parse(w[2], CultureInfo.InvariantCulture);
            ConnTuple o = ReadTuple(fam, proto, w, 3), r = ReadTuple(fam, proto, w, 7);
            var ct = new ConnEntry(o, r);
            for (int i = 11; i < w.Length; i++)
            {
                int eq = w[i].IndexOf('=', StringComparison.Ordinal);
                if (eq < 0) throw new FormatException("conntrack.state: bad field: " + w[i]);
                string k = w[i][..eq], v = w[i][(eq + 1)..];
                switch (k)
                {
                    case "status": ct.Status = (ConnStatus)uint.Parse(v, CultureInfo.InvariantCulture); break;
                    case "timeout": ct.Timeout = double.Parse(v, CultureInfo.InvariantCulture); break;
                    case "mark": ct.Mark = uint.Parse(v, CultureInfo.InvariantCulture); break;
                    case "secmark": ct.Secmark = uint.Parse(v, CultureInfo.InvariantCulture); break;
                    case "labels": ct.Labels = UInt128.Parse(v, NumberStyles.HexNumber, CultureInfo.InvariantCulture); break;
                    case "zone": ct.Zone = ushort.Parse(v, CultureInfo.InvariantCulture); break;
                    case "zonedir": ct.ZoneDirections = byte.Parse(v, CultureInfo.InvariantCulture); break;
                    case "udpstream": ct.UdpStreamAt = double.Parse(v, CultureInfo.InvariantCulture); break;
                    case "events": ct.EventMask = uint.Parse(v, CultureInfo.InvariantCulture); break;
                    case "helper": ct.Helper = v; break;
                    case "masq": ct.MasqueradeDevice = v; break;
                    case "acct":
                        {
                            ulong[] n = v.Split(',').Select(x => ulong.Parse(x, CultureInfo.InvariantCulture)).ToArray();
                            ct.Counters = [new ConnCounter { Packets = n[0], Bytes = n[1] }, new ConnCounter { Packets = n[2], Bytes = n[3] }];
                            break;
                        }
                    case "tcp":
                        {
                            uint[] n = v.Split(',').Select(x => uint.Parse(x, CultureInfo.InvariantCulture)).ToArray();
                            if (n.Length != 22) throw new FormatException("conntrack.state: bad tcp field: " + v);
                            var t = new TcpConnState
                            {
                                State = (TcpCtState)n[0], LastDir = (byte)n[1], LastIndex = (byte)n[2], LastSeq = n[3], LastAck = n[4],
                                LastEnd = n[5], LastWin = (ushort)n[6], LastWscale = (byte)n[7], LastFlags = (byte)n[8], Retrans = (byte)n[9],
                            };
                            for (int s = 0; s < 2; s++)
                            {
                                int b = 10 + (s * 6);
                                ref TcpSide side = ref t.Seen[s];
                                side.End = n[b];
                                side.MaxEnd = n[b + 1];
                                side.MaxWin = n[b + 2];
                                side.MaxAck = n[b + 3];
                                side.Scale = (byte)n[b + 4];
                                side.Flags = (byte)n[b + 5];
                            }
                            ct.SetTcp(t);
                            break;
                        }
                }
            }
            table.Insert(ct);
        }
        return table;
    }

    private static ConnTuple ReadTuple(IpFamily fam, byte proto, string[] w, int at)
    {
        if (!IpNet.TryParseNumeric(w[at], fam, out UInt128 s) || !IpNet.TryParseNumeric(w[at + 1], fam, out UInt128 d))
            throw new FormatException("conntrack.state: bad address: " + w[at] + " " + w[at + 1]);
        return new ConnTuple(fam, proto, s, d, ushort.Parse(w[at + 2], CultureInfo.InvariantCulture), ushort.Parse(w[at + 3], CultureInfo.InvariantCulture));
    }

    /// <summary>The table saved in the host directory, or an empty one.</summary>
    public static ConntrackTable Load(string hostDirectory)
    {
        string path = Path.Combine(hostDirectory, FileName);
        return File.Exists(path) ? Parse(File.ReadAllText(path)) : new ConntrackTable();
    }

    /// <summary>Writes the table atomically into the host directory (nothing is written for an empty table without a file).</summary>
    public static void Save(string hostDirectory, ConntrackTable table, double now)
    {
        string path = Path.Combine(hostDirectory, FileName);
        if (table.Count == 0 && !File.Exists(path)) return;
        HostStore.WriteAtomic(path, Format(table, now));
    }
}
