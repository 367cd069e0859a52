using System.Globalization;
using System.Text;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Compat;

/// <summary>
/// The <c>ip</c> tool (iproute2 6.1) subset for links, addresses and routes on the virtual host: the
/// same arguments, abbreviations, output and messages as on Linux. A command that fails changes nothing.
/// </summary>
public static class IpCompat
{
    private sealed class UsageError(string message, int exitCode) : Exception(message)
    {
        public int ExitCode { get; } = exitCode;
    }

    private sealed class Options
    {
        public IpFamily? Family { get; set; }

        public bool Brief { get; set; }

        public bool Oneline { get; set; }

        public bool Json { get; set; }
    }

    /// <summary>iproute2's objects in the order it tries them (so "a" is address, "n" is neighbor, "r" is route).</summary>
    private static readonly string[] Objects =
    [
        "address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour", "ntable", "ntbl", "link", "l2tp", "fou",
        "ila", "macsec", "tunnel", "tunl", "tuntap", "tap", "token", "tcpmetrics", "tcp_metrics", "monitor", "xfrm", "mroute",
        "mrule", "netns", "netconf", "vrf", "sr", "nexthop", "mptcp", "ioam", "stats", "amt", "help",
    ];

    /// <summary>iproute2's matches(): the argument is a non-empty prefix of the keyword.</summary>
    private static bool Matches(string arg, string keyword) => arg.Length > 0 && keyword.StartsWith(arg, StringComparison.Ordinal);

    public static int Run(string[] argv, HostStore store, ToolIo io)
    {
        var opt = new Options();
        int i = 1;
        for (; i < argv.Length && argv[i].Length > 1 && argv[i][0] == '-'; i++)
        {
            string a = argv[i];
            string o = a.StartsWith("--", StringComparison.Ordinal) ? a[1..] : a;
            if (o == "-4") opt.Family = IpFamily.V4;
            else if (o == "-6") opt.Family = IpFamily.V6;
            else if (o.Length >= 3 && "-brief".StartsWith(o, StringComparison.Ordinal)) opt.Brief = true;
            else if (Matches(o, "-oneline")) opt.Oneline = true;
            else if (Matches(o, "-json")) opt.Json = true;
            else if (o == "-V" || (o.Length > 2 && "-Version".StartsWith(o, StringComparison.Ordinal)))
            {
                io.Out.WriteLine("ip utility, iproute2-6.1.0, libbpf 1.1.2");
                return 0;
            }
            else if (Matches(o, "-color") || Matches(o, "-human") || Matches(o, "-iec")) continue;
            else if (o == "-f" || Matches(o, "-family"))
            {
                if (++i >= argv.Length)
                {
                    io.Err.WriteLine("Command line is not complete. Try option \"help\"");
                    return 255;
                }
                opt.Family = argv[i] switch
                {
                    "inet" or "ipv4" => IpFamily.V4,
                    "inet6" or "ipv6" => IpFamily.V6,
                    _ => null,
                };
            }
            else
            {
                io.Err.WriteLine($"Option \"{a}\" is unknown, try \"ip -help\".");
                return 255;
            }
        }
        if (i >= argv.Length)
        {
            io.Err.Write(Usage);
            return 255;
        }
        // chainwalk --json: iproute2's own JSON objects (as -j), one a line.
        if (io.Json) opt.Json = true;
        string objArg = argv[i];
        string? obj = Objects.FirstOrDefault(o => Matches(objArg, o));
        string[] args = argv[(i + 1)..];
        if (obj is null || obj is not ("address" or "route" or "link"))
        {
            if (obj is null)
            {
                io.Err.WriteLine($"Object \"{objArg}\" is unknown, try \"ip help\".");
                return 1;
            }
            if (obj == "help")
            {
                io.Err.Write(Usage);
                return 255;
            }
            io.Err.WriteLine($"chainwalk ip: \"ip {obj}\" is not modelled on the virtual host (address, link and route are)");
            return 2;
        }

        try
        {
            using HostLock hostLock = store.Lock(waitSeconds: null);
            VirtualHost host = store.LoadNetwork();
            bool changed = obj switch
            {
                "link" => Link(host, args, opt, io),
                "address" => Address(host, args, opt, io),
                _ => RouteCmd(host, args, opt, io),
            };
            if (changed) store.SaveNetwork(host);
            return 0;
        }
        catch (NetworkException ex)
        {
            io.Err.WriteLine(ex.Message);
            return ex.ExitCode;
        }
        catch (UsageError ex)
        {
            io.Err.WriteLine(ex.Message);
            return ex.ExitCode;
        }
    }

    private const string Usage = """
Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }
       ip [ -force ] -batch filename
where  OBJECT := { address | link | route }
       OPTIONS := { -V[ersion] | -4 | -6 | -br[ief] | -o[neline] | -j[son] | -f[amily] { inet | inet6 } }

""";

    private static UsageError Incomplete() => new("Command line is not complete. Try option \"help\"", 255);

    private static UsageError Garbage(string key, string arg) => new($"Error: either \"{key}\" is duplicate, or \"{arg}\" is a garbage.", 255);

    private static string Next(string[] a, ref int i)
    {
        if (++i >= a.Length) throw Incomplete();
        return a[i];
    }

    // ---------------------------------------------------------------- link

    private static bool Link(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        if (a.Length == 0 || Matches(a[0], "show") || Matches(a[0], "list") || Matches(a[0], "lst"))
        {
            ShowLinks(host, a.Length == 0 ? a : a[1..], opt, io);
            return false;
        }
        string cmd = a[0];
        if (Matches(cmd, "add")) { LinkAdd(host, a); return true; }
        if (Matches(cmd, "delete")) { LinkDelete(host, a); return true; }
        if (Matches(cmd, "set")) { LinkSet(host, a); return true; }
        if (Matches(cmd, "help"))
        {
            io.Err.WriteLine("Usage: ip link add [link DEV | parentdev NAME] [ name ] NAME");
            throw new UsageError("", 255);
        }
        throw new UsageError($"Command \"{cmd}\" is unknown, try \"ip link help\".", 255);
    }

    private static void LinkAdd(VirtualHost host, string[] a)
    {
        string? name = null, type = null, peer = null;
        // Link attributes for the new link and, after "peer", for the veth peer.
        var mine = new List<Action<string>>();
        var peers = new List<Action<string>>();
        void Attribute(string key, string value, List<Action<string>> into)
        {
            if (key == "mtu")
            {
                if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int mtu))
                {
                    throw new UsageError($"Error: argument \"{value}\" is wrong: Invalid \"mtu\" value\n", 255);
                }
                into.Add(n => Network.SetMtu(host, n, mtu));
                return;
            }
            if (!Network.TryParseMac(value, out string mac)) throw new UsageError($"\"{value}\" is invalid lladdr.", 1);
            into.Add(n => Network.SetMac(host, n, mac));
        }
        for (int i = 1; i < a.Length; i++)
        {
            string t = a[i];
            if (t is "name" or "dev") name = Next(a, ref i);
            else if (t is "address" or "mtu") Attribute(t, Next(a, ref i), mine);
            else if (t == "type")
            {
                type = Next(a, ref i);
                // Everything after the type belongs to the type (veth: peer [name] NAME [address MAC] [mtu N]).
                for (i++; i < a.Length; i++)
                {
                    if (type == "veth" && a[i] == "peer" && peer is null)
                    {
                        string n = Next(a, ref i);
                        if (n == "name") n = Next(a, ref i);
                        peer = n;
                    }
                    else if (type == "veth" && peer is not null && a[i] is "address" or "mtu")
                    {
                        string key = a[i];
                        Attribute(key, Next(a, ref i), peers);
                    }
                    else
                    {
                        throw new UsageError($"chainwalk ip: link add: \"{a[i]}\" is not supported for type {type}", 2);
                    }
                }
            }
            else if (name is null) name = t;
            else throw Garbage("name", t);
        }
        if (type is null) throw new UsageError("Not enough information: \"type\" argument is required", 1);
        if (name is null) throw new UsageError("Not enough information: \"dev\" argument is required.", 1);
        CheckIfName(name);
        if (peer is not null) CheckIfName(peer);
        if (name.Length > Network.MaxNameLength || peer?.Length > Network.MaxNameLength)
        {
            throw new UsageError("Error: Attribute failed policy validation.", 2);
        }
        Network.AddLink(host, name, type, peer);
        try
        {
            foreach (Action<string> act in mine) act(name);
            string? peerName = host.FindLink(name)?.Peer;
            if (peerName is not null)
            {
                foreach (Action<string> act in peers) act(peerName);
            }
        }
        catch (NetworkException)
        {
            // Attributes of a new link are checked by the driver's newlink, which only says EINVAL.
            throw new NetworkException("RTNETLINK answers: Invalid argument", 2);
        }
    }

    private static void CheckIfName(string name)
    {
        if (name.Length == 0 || name.Any(c => c == '/' || c == ':' || char.IsWhiteSpace(c)))
        {
            throw new UsageError($"Error: argument \"{name}\" is wrong: \"name\" not a valid ifname", 255);
        }
    }

    private static void LinkDelete(VirtualHost host, string[] a)
    {
        string? name = null;
        for (int i = 1; i < a.Length; i++)
        {
            if (a[i] is "dev" or "name") name = Next(a, ref i);
            else if (a[i] == "type") Next(a, ref i);
            else if (name is null) name = a[i];
            else throw Garbage("dev", a[i]);
        }
        if (name is null) throw new UsageError("Not enough information: \"dev\" argument is required.", 1);
        Network.DeleteLink(host, name);
    }

    private static void LinkSet(VirtualHost host, string[] a)
    {
        string? name = null, newName = null;
        var actions = new List<Action<string>>();
        for (int i = 1; i < a.Length; i++)
        {
            string t = a[i];
            switch (t)
            {
                case "up": actions.Add(n => Network.SetUp(host, n, true)); break;
                case "down": actions.Add(n => Network.SetUp(host, n, false)); break;
                case "mtu":
                    {
                        string v = Next(a, ref i);
                        if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int mtu))
                        {
                            throw new UsageError($"Error: argument \"{v}\" is wrong: Invalid \"mtu\" value\n", 255);
                        }
                        actions.Add(n => Network.SetMtu(host, n, mtu));
                        break;
                    }
                case "address":
                    {
                        string v = Next(a, ref i);
                        if (!Network.TryParseMac(v, out string mac)) throw new UsageError($"\"{v}\" is invalid lladdr.", 1);
                        actions.Add(n => Network.SetMac(host, n, mac));
                        break;
                    }
                case "dev":
                    name = Next(a, ref i);
                    break;
                case "name":
                    {
                        string v = Next(a, ref i);
                        CheckIfName(v);
                        if (v.Length > Network.MaxNameLength) throw new UsageError($"Error: argument \"{v}\" is wrong: \"name\" not a valid ifname", 255);
                        newName = v;
                        break;
                    }
                default:
                    if (name is null) name = t;
                    else throw Garbage("dev", t);
                    break;
            }
        }
        if (name is null) throw new UsageError("Not enough information: \"dev\" argument is required.", 1);
        Network.RequireLink(host, name);
        // rtnetlink applies the new name before the other attributes (do_setlink: IFLA_IFNAME early).
        if (newName is not null)
        {
            Network.Rename(host, name, newName);
            name = newName;
        }
        foreach (Action<string> act in actions) act(name);
    }

    private static string LinkName(VirtualHost host, Link l) =>
        l.Peer is not null && host.FindLink(l.Peer) is not null ? l.Name + "@" + l.Peer : l.Name;

    private static string LinkHeader(VirtualHost host, Link l, bool mode) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{l.Index}: {LinkName(host, l)}: <{Network.Flags(host, l)}> mtu {l.Mtu} qdisc {Network.Qdisc(l)} state {Network.OperState(host, l)} {(mode ? "mode DEFAULT " : string.Empty)}group default qlen 1000");

    private static string LinkLine(Link l) => l.Kind == "loopback"
        ? $"    link/loopback {l.Mac} brd 00:00:00:00:00:00"
        : $"    link/ether {l.Mac} brd ff:ff:ff:ff:ff:ff";

    private static List<Link> SelectLinks(VirtualHost host, string[] a, out bool namedDev)
    {
        string? dev = null, type = null;
        bool upOnly = false;
        for (int i = 0; i < a.Length; i++)
        {
            string t = a[i];
            if (t == "dev") dev = Next(a, ref i);
            else if (t == "type") type = Next(a, ref i);
            else if (t == "up") upOnly = true;
            else if (dev is null) dev = t;
            else throw Garbage("dev", t);
        }
        namedDev = dev is not null;
        if (dev is not null && host.FindLink(dev) is null) throw new UsageError($"Device \"{dev}\" does not exist.", 1);
        return host.Links
            .Where(l => (dev is null || l.Name == dev) && (type is null || l.Kind == type) && (!upOnly || l.Up))
            .OrderBy(l => l.Index)
            .ToList();
    }

    private static void ShowLinks(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        if (opt.Json)
        {
            io.Out.Write(IpJson.Links(host, SelectLinks(host, a, out _), opt.Brief, io.Json));
            return;
        }
        var sb = new StringBuilder();
        foreach (Link l in SelectLinks(host, a, out _))
        {
            if (opt.Brief)
            {
                sb.Append(CultureInfo.InvariantCulture, $"{LinkName(host, l),-16} {Network.OperState(host, l),-14} {l.Mac} <{Network.Flags(host, l)}> \n");
                continue;
            }
            sb.Append(LinkHeader(host, l, mode: true)).Append(opt.Oneline ? '\\' : '\n');
            sb.Append(LinkLine(l)).Append('\n');
        }
        io.Out.Write(sb.ToString());
    }

    // ---------------------------------------------------------------- address

    private static bool Address(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        if (a.Length == 0 || Matches(a[0], "list") || Matches(a[0], "show") || Matches(a[0], "lst"))
        {
            ShowAddresses(host, a.Length == 0 ? a : a[1..], opt, io);
            return false;
        }
        string cmd = a[0];
        if (Matches(cmd, "add")) { AddressModify(host, a, opt, add: true, io); return true; }
        if (Matches(cmd, "delete")) { AddressModify(host, a, opt, add: false, io); return true; }
        if (Matches(cmd, "flush")) { AddressFlush(host, a, opt); return true; }
        throw new UsageError($"Command \"{cmd}\" is unknown, try \"ip address help\".", 255);
    }

    private static string FamilyWord(IpFamily? f) => f switch { IpFamily.V4 => "inet", IpFamily.V6 => "inet6", _ => "any valid" };

    /// <summary>get_prefix: ADDR[/LEN]; <paramref name="hasLength"/> tells whether /LEN was given.</summary>
    private static bool TryParsePrefix(string text, IpFamily? want, out IpFamily family, out UInt128 address, out int length, out bool hasLength)
    {
        family = IpFamily.V4;
        address = UInt128.Zero;
        length = 0;
        hasLength = false;
        string addr = text, len = string.Empty;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            addr = text[..slash];
            len = text[(slash + 1)..];
            hasLength = true;
        }
        family = addr.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4;
        if (want is not null && want != family) return false;
        if (family == IpFamily.V4)
        {
            if (!IpNet.TryParseV4Numeric(addr, false, out uint v4)) return false;
            address = v4;
        }
        else if (!IpNet.TryParseV6Numeric(addr, out address)) return false;
        int bits = family.AddressBits();
        length = bits;
        if (hasLength && (!int.TryParse(len, NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > bits)) return false;
        return true;
    }

    private static void AddressModify(VirtualHost host, string[] a, Options opt, bool add, ToolIo io)
    {
        string? dev = null, local = null, brd = null, label = null;
        bool nodad = false;
        for (int i = 1; i < a.Length; i++)
        {
            string t = a[i];
            switch (t)
            {
                case "dev": dev = Next(a, ref i); break;
                case "local": local = Next(a, ref i); break;
                case "broadcast" or "brd": brd = Next(a, ref i); break;
                case "label": label = Next(a, ref i); break;
                case "scope": Next(a, ref i); break;
                case "valid_lft" or "preferred_lft": Next(a, ref i); break;
                case "nodad": nodad = true; break;
                case "noprefixroute" or "home" or "permanent": break;
                default:
                    if (local is null) local = t;
                    else throw Garbage("local", t);
                    break;
            }
        }
        if (dev is null) throw new UsageError("Not enough information: \"dev\" argument is required.", 1);
        if (local is null)
        {
            Network.RequireLink(host, dev);
            throw new UsageError("RTNETLINK answers: Operation not supported", 2);
        }
        if (!TryParsePrefix(local, opt.Family, out IpFamily fam, out UInt128 addr, out int len, out bool hasLen))
        {
            throw new UsageError($"Error: {FamilyWord(opt.Family)} prefix is expected rather than \"{local}\".", 1);
        }
        UInt128? broadcast = null;
        if (brd is not null && fam == IpFamily.V4)
        {
            if (brd is "+" or "-")
            {
                if (len < 31)
                {
                    UInt128 mask = IpNet.PrefixMask(IpFamily.V4, len);
                    broadcast = brd == "+" ? (addr & mask) | (~mask & uint.MaxValue) : addr & mask;
                }
            }
            else if (IpNet.TryParseV4Numeric(brd, false, out uint b)) broadcast = b;
            else throw new UsageError($"Error: inet address is expected rather than \"{brd}\".", 1);
        }
        Network.RequireLink(host, dev);
        if (add)
        {
            Network.AddAddress(host, new InterfaceAddress(dev, fam, addr, len) { Broadcast = broadcast, Label = fam == IpFamily.V4 && label != dev ? label : null, NoDad = nodad && fam == IpFamily.V6 });
            return;
        }
        if (!hasLen && fam == IpFamily.V4)
        {
            io.Err.Write(string.Create(CultureInfo.InvariantCulture, $"""
Warning: Executing wildcard deletion to stay compatible with old scripts.
         Explicitly specify the prefix length ({local}/32) to avoid this warning.
         This special behaviour is likely to disappear in further releases,
         fix your scripts!

"""));
        }
        Network.DeleteAddress(host, dev, fam, addr, hasLen || fam == IpFamily.V6 ? len : null);
    }

    private static void AddressFlush(VirtualHost host, string[] a, Options opt)
    {
        string? dev = null;
        for (int i = 1; i < a.Length; i++)
        {
            if (a[i] == "dev") dev = Next(a, ref i);
            else if (dev is null) dev = a[i];
            else throw Garbage("dev", a[i]);
        }
        if (dev is null) throw new UsageError("Flush requires arguments.", 1);
        if (host.FindLink(dev) is null) throw new UsageError($"Device \"{dev}\" does not exist.", 1);
        Network.FlushAddresses(host, dev, opt.Family);
    }

    private static void ShowAddresses(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        var sb = new StringBuilder();
        List<Link> links = SelectLinks(host, a, out bool namedDev);
        IpFamily[] fams = opt.Family is { } f ? [f] : [IpFamily.V4, IpFamily.V6];
        if (opt.Json)
        {
            var withAddrs = links.Select(l => (l, fams.SelectMany(fam => Network.AddressesOf(host, l.Name, fam)).ToList()))
                .Where(t => opt.Family is null || t.Item2.Count > 0);
            io.Out.Write(IpJson.Addresses(host, withAddrs, opt.Family, opt.Brief, io.Json));
            return;
        }
        foreach (Link l in links)
        {
            var addrs = fams.SelectMany(fam => Network.AddressesOf(host, l.Name, fam)).ToList();
            if (opt.Family is not null && addrs.Count == 0) continue;
            if (opt.Brief)
            {
                sb.Append(CultureInfo.InvariantCulture, $"{LinkName(host, l),-16} {Network.OperState(host, l),-14} ");
                foreach (InterfaceAddress x in addrs) sb.Append(x.Text).Append(' ');
                sb.Append('\n');
                continue;
            }
            if (opt.Oneline)
            {
                // -o: no header; each address is one line, "N: NAME" then the two lines joined by '\'.
                foreach (InterfaceAddress x in addrs)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"{l.Index}: {l.Name}").Append(AddressLine(host, l, x)).Append('\\').Append(Lifetimes).Append('\n');
                }
                continue;
            }
            if (opt.Family == IpFamily.V6 && !namedDev)
            {
                // The IPv6-only dump prints a shorter header (no qdisc, no group).
                sb.Append(CultureInfo.InvariantCulture, $"{l.Index}: {LinkName(host, l)}: <{Network.Flags(host, l)}> mtu {l.Mtu} state {Network.OperState(host, l)} qlen 1000\n");
            }
            else
            {
                sb.Append(LinkHeader(host, l, mode: false)).Append('\n');
            }
            if (opt.Family is null) sb.Append(LinkLine(l)).Append('\n');
            foreach (InterfaceAddress x in addrs)
            {
                sb.Append(AddressLine(host, l, x)).Append('\n').Append(Lifetimes).Append('\n');
            }
        }
        io.Out.Write(sb.ToString());
    }

    private const string Lifetimes = "       valid_lft forever preferred_lft forever";

    private static string AddressLine(VirtualHost host, Link l, InterfaceAddress x)
    {
        var sb = new StringBuilder();
        string scope = Network.AddressScope(x);
        if (x.Family == IpFamily.V4)
        {
            sb.Append("    inet ").Append(x.Text);
            if (x.Broadcast is { } b) sb.Append(" brd ").Append(IpNet.FormatAddress(b, IpFamily.V4));
            sb.Append(" scope ").Append(scope);
            if (Network.IsSecondary(host, x)) sb.Append(" secondary");
            sb.Append(' ').Append(x.Label ?? l.Name);
        }
        else
        {
            sb.Append("    inet6 ").Append(x.Text).Append(" scope ").Append(scope).Append(' ');
            if (x.NoDad) sb.Append("nodad ");
            if (x.Tentative) sb.Append("tentative ");
        }
        return sb.ToString();
    }

    // ---------------------------------------------------------------- route

    private static bool RouteCmd(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        if (a.Length == 0 || Matches(a[0], "list") || Matches(a[0], "show") || Matches(a[0], "lst"))
        {
            ShowRoutes(host, a.Length == 0 ? a : a[1..], opt, io);
            return false;
        }
        string cmd = a[0];
        if (Matches(cmd, "add")) { RouteModify(host, a, opt, add: true); return true; }
        if (Matches(cmd, "replace")) { RouteModify(host, a, opt, add: true, replace: true); return true; }
        if (Matches(cmd, "delete")) { RouteModify(host, a, opt, add: false); return true; }
        if (Matches(cmd, "get")) { RouteGet(host, a, opt, io); return false; }
        if (Matches(cmd, "flush")) return RouteFlush(host, a, opt);
        throw new UsageError($"Command \"{cmd}\" is unknown, try \"ip route help\".", 255);
    }

    private static bool RouteFlush(VirtualHost host, string[] a, Options opt)
    {
        if (a.Length == 1) throw new UsageError("\"ip route flush\" requires arguments.", 1);
        string table = "main";
        string? dev = null, proto = null;
        for (int i = 1; i < a.Length; i++)
        {
            string t = a[i];
            if (t == "cache") return false;
            if (t == "table")
            {
                string v = Next(a, ref i);
                table = Network.TableName(v) ?? throw new UsageError($"Error: argument \"{v}\" is wrong: table id value is invalid\n", 255);
            }
            else if (t is "dev" or "oif") dev = Next(a, ref i);
            else if (t is "proto" or "protocol") proto = Next(a, ref i);
            else throw Garbage("to", t);
        }
        if (proto is "boot" or "3") proto = "boot";
        Network.FlushRoutes(host, opt.Family ?? IpFamily.V4, table, dev, proto);
        return true;
    }

    private static void RouteGet(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        string? dst = null, from = null, iif = null, oif = null;
        uint mark = 0;
        for (int i = 1; i < a.Length; i++)
        {
            switch (a[i])
            {
                case "to": dst = Next(a, ref i); break;
                case "from": from = Next(a, ref i); break;
                case "iif": iif = Next(a, ref i); break;
                case "oif": oif = Next(a, ref i); break;
                case "mark":
                    {
                        string v = Next(a, ref i);
                        if (!NumberParsing.TryParseCUnsigned(v, uint.MaxValue, out ulong m)) throw new UsageError($"Error: argument \"{v}\" is wrong: mark\n", 255);
                        mark = (uint)m;
                        break;
                    }
                default:
                    if (dst is null) dst = a[i];
                    else throw Garbage("to", a[i]);
                    break;
            }
        }
        if (dst is null) throw new UsageError("need at least a destination address", 1);
        if (!TryParsePrefix(dst, opt.Family, out IpFamily family, out UInt128 addr, out _, out bool hasLen) || hasLen)
        {
            throw new UsageError($"Error: {FamilyWord(opt.Family)} prefix is expected rather than \"{dst}\".", 1);
        }
        UInt128? fromAddress = null;
        if (from is not null)
        {
            if (!TryParsePrefix(from, family, out _, out UInt128 fa, out _, out bool fromLen) || fromLen)
            {
                throw new UsageError($"Error: {FamilyWord(family)} prefix is expected rather than \"{from}\".", 1);
            }
            fromAddress = fa;
        }
        (string text, int rc) = IpRouteGet.Answer(host, family, addr, dst, from, fromAddress, iif, oif, mark, opt.Json, io.Json);
        if (rc != 0) throw new UsageError(text.TrimEnd('\n'), rc);
        io.Out.Write(text);
    }

    private static void RouteModify(VirtualHost host, string[] a, Options opt, bool add, bool replace = false)
    {
        string? dst = null, via = null, dev = null, src = null, proto = null, table = null, type = null;
        int? metric = null;
        for (int i = 1; i < a.Length; i++)
        {
            string t = a[i];
            switch (t)
            {
                case "via": via = Next(a, ref i); break;
                case "dev" or "oif": dev = Next(a, ref i); break;
                case "src": src = Next(a, ref i); break;
                case "proto" or "protocol": proto = Next(a, ref i); break;
                case "table": table = Next(a, ref i); break;
                case "metric" or "priority" or "preference":
                    {
                        string v = Next(a, ref i);
                        if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int m))
                        {
                            throw new UsageError($"Error: argument \"{v}\" is wrong: \"metric\" value is invalid\n", 255);
                        }
                        metric = m;
                        break;
                    }
                case "to": dst = Next(a, ref i); break;
                case "unicast" or "local" or "broadcast" or "multicast" or "blackhole" or "unreachable" or "prohibit" or "throw" or "nat" or "anycast"
                    when dst is null && type is null:
                    type = t;
                    break;
                default:
                    if (dst is null) dst = t;
                    else throw Garbage("to", t);
                    break;
            }
        }
        string? tableName = null;
        if (table is not null)
        {
            tableName = Network.TableName(table) ?? throw new UsageError($"Error: argument \"{table}\" is wrong: \"table\" value is invalid\n", 255);
            if (tableName == "local" && add) throw new UsageError("chainwalk ip: routes of table local are the kernel's; adding them is not modelled", 2);
            if (tableName == "main") tableName = null;
        }
        if (dst is null) throw new UsageError("RTNETLINK answers: Invalid argument", 2);
        IpFamily family;
        UInt128 prefix;
        int len;
        if (dst is "default" or "all" or "any")
        {
            family = opt.Family ?? (via is not null && via.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4);
            prefix = UInt128.Zero;
            len = 0;
        }
        else if (!TryParsePrefix(dst, opt.Family, out family, out prefix, out len, out _))
        {
            throw new UsageError($"Error: {FamilyWord(opt.Family)} prefix is expected rather than \"{dst}\".", 1);
        }
        UInt128? gw = null;
        if (via is not null)
        {
            if (!TryParsePrefix(via, family, out _, out UInt128 g, out int glen, out bool gHasLen) || gHasLen || glen != family.AddressBits())
            {
                throw new UsageError($"Error: {FamilyWord(family)} address is expected rather than \"{via}\".", 1);
            }
            gw = g;
        }
        UInt128? source = null;
        if (src is not null)
        {
            if (!TryParsePrefix(src, family, out _, out UInt128 s, out _, out bool sHasLen) || sHasLen)
            {
                throw new UsageError($"Error: {FamilyWord(family)} address is expected rather than \"{src}\".", 1);
            }
            source = s;
        }
        if (dev is not null) Network.RequireLink(host, dev);
        if (proto is "boot" or "3") proto = null;
        if (add && type is not (null or "unicast"))
        {
            throw new UsageError($"chainwalk ip: routes of type {type} are not modelled", 2);
        }
        if (add)
        {
            int m = metric ?? (family == IpFamily.V6 ? 1024 : 0);
            Network.AddRoute(host, new Route(family, prefix, len, dev, gw, source, m) { Proto = proto, Table = tableName }, replace);
            return;
        }
        Network.DeleteRoute(host, family, prefix, len, dev, gw, metric, proto, tableName ?? "main", type);
    }

    private static void ShowRoutes(VirtualHost host, string[] a, Options opt, ToolIo io)
    {
        string table = "main";
        string? dev = null;
        for (int i = 0; i < a.Length; i++)
        {
            string t = a[i];
            if (t == "table")
            {
                string v = Next(a, ref i);
                table = v is "all" or "0" ? "all" : Network.TableName(v) ?? throw new UsageError($"Error: argument \"{v}\" is wrong: table id value is invalid\n", 255);
            }
            else if (t is "dev" or "oif") dev = Next(a, ref i);
            else throw Garbage("to", t);
        }
        if (dev is not null && host.FindLink(dev) is null) throw new UsageError($"Cannot find device \"{dev}\"", 1);
        // Without -4/-6, iproute2 lists IPv4 only, except for "table all", which lists both families.
        IpFamily[] families = opt.Family is { } only ? [only] : table == "all" ? [IpFamily.V4, IpFamily.V6] : [IpFamily.V4];
        if (families[0] == IpFamily.V4 && table is not ("all" or "main") && !host.RouteTables.Contains(table) && !Network.Routes(host, IpFamily.V4, table).Any())
        {
            throw new UsageError("Error: ipv4: FIB table does not exist.\nDump terminated", 2);
        }
        if (opt.Json)
        {
            io.Out.Write(IpJson.Routes(families.SelectMany(fam => Network.Routes(host, fam, table)).Where(r => dev is null || r.Device == dev), dev is null, table == "all", io.Json));
            return;
        }
        var sb = new StringBuilder();
        foreach (RouteView r in families.SelectMany(fam => Network.Routes(host, fam, table)))
        {
            IpFamily family = r.Family;
            if (dev is not null && r.Device != dev) continue;
            if (opt.Brief)
            {
                sb.Append(FormatDst(r)).Append(' ');
                if (r.Via is { } bv) sb.Append("via ").Append(IpNet.FormatAddress(bv, family)).Append(' ');
                if (dev is null && r.Device is not null) sb.Append("dev ").Append(r.Device).Append(' ');
                sb.Append('\n');
                continue;
            }
            sb.Append(FormatRoute(r, dev is null, table == "all")).Append('\n');
        }
        io.Out.Write(sb.ToString());
    }

    private static string FormatDst(RouteView r)
    {
        if (r.PrefixLength == 0) return "default";
        string addr = IpNet.FormatAddress(r.Prefix, r.Family);
        return r.PrefixLength == r.Family.AddressBits() ? addr : addr + "/" + r.PrefixLength.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>One line of <c>ip route</c> (print_route): IPv4 fields each end with a space; IPv6 ends with "pref medium".</summary>
    public static string FormatRoute(RouteView r, bool showDev, bool showTable)
    {
        var sb = new StringBuilder();
        if (r.Type != "unicast") sb.Append(r.Type).Append(' ');
        sb.Append(FormatDst(r)).Append(' ');
        if (r.Via is { } via) sb.Append("via ").Append(IpNet.FormatAddress(via, r.Family)).Append(' ');
        if (showDev && r.Device is not null) sb.Append("dev ").Append(r.Device).Append(' ');
        if (showTable && r.Table != "main") sb.Append("table ").Append(r.Table).Append(' ');
        if (r.Proto is not null) sb.Append("proto ").Append(r.Proto).Append(' ');
        if (r.Scope is not null) sb.Append("scope ").Append(r.Scope).Append(' ');
        if (r.Src is { } src) sb.Append("src ").Append(IpNet.FormatAddress(src, r.Family)).Append(' ');
        if (r.Family == IpFamily.V6 || r.Metric != 0) sb.Append("metric ").Append(r.Metric.ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (r.LinkDown) sb.Append("linkdown ");
        if (r.Family == IpFamily.V6) sb.Append("pref medium");
        return sb.ToString();
    }
}
