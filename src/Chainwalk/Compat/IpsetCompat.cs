using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Chainwalk.Extensions;
using Chainwalk.Extensions.Matches;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Compat;

/// <summary>
/// <c>ipset</c> (7.17) on a virtual host: create, add, del, test, list, save, restore, flush, destroy,
/// rename, swap for the hash:ip, hash:net, hash:ip,port and hash:net,port types. Errors are printed as
/// "ipset v7.17: MESSAGE" with exit 1 (kernel refusals) or 2 (command-line errors, with the help hint).
/// </summary>
public static class IpsetCompat
{
    private const string Prefix = "ipset v7.17: ";
    private const string Hint = "Try `ipset help' for more information.";

    private static readonly string[] KnownTypes = [
        "hash:ip", "hash:net", "hash:ip,port", "hash:net,port", "hash:ip,port,ip", "hash:ip,port,net", "bitmap:port", "list:set",
    ];

    private static readonly Dictionary<string, string> Legacy = new(StringComparer.Ordinal)
    {
        ["-N"] = "create", ["-A"] = "add", ["-D"] = "del", ["-T"] = "test", ["-E"] = "rename", ["-W"] = "swap",
        ["-L"] = "list", ["-S"] = "save", ["-F"] = "flush", ["-X"] = "destroy", ["-R"] = "restore", ["-V"] = "version",
    };

    public static int Run(string[] argv, HostStore host, ToolIo io)
    {
        bool exist = false, names = false, terse = false, quiet = false;
        string output = "plain";
        var words = new List<string>();
        for (int i = 1; i < argv.Length; i++)
        {
            string a = argv[i];
            switch (a)
            {
                case "-exist" or "-!" or "--exist": exist = true; continue;
                case "-n" or "-name" or "--name": names = true; continue;
                case "-t" or "-terse" or "--terse": terse = true; continue;
                case "-q" or "-quiet" or "--quiet": quiet = true; continue;
                case "-s" or "-sorted" or "-r" or "-resolve": continue;
                case "-o" or "-output" or "--output" when i + 1 < argv.Length:
                    output = argv[++i];
                    if (output is not ("plain" or "save"))
                    {
                        io.Err.WriteLine(Prefix + $"Syntax error: unknown output mode '{output}'");
                        return 1;
                    }
                    continue;
            }
            // The old single-letter command options (ipset 4 syntax), still accepted.
            if (words.Count == 0 && Legacy.TryGetValue(a, out string? command)) a = command;
            words.Add(a);
        }
        if (words.Count == 0)
        {
            io.Err.WriteLine(Prefix + "No command specified.");
            io.Err.WriteLine(Hint);
            return 2;
        }
        try
        {
            using HostLock hostLock = host.Lock(null);
            IpsetStore store = IpsetStore.Load(host);
            string cmd = words[0];
            if (cmd is "version" or "v" or "-V")
            {
                io.Out.WriteLine("ipset v7.17, protocol version: 7");
                return 0;
            }
            if (cmd is "list" or "l" or "save" or "s" or "destroy" or "x" or "flush" or "f" && words.Count > 2)
                throw new IpsetException($"Unknown argument {words[2]}", 2);
            if (cmd is "list" or "l" or "save" or "s")
                return List(store, host, words, cmd[0] == 's' || output == "save", names, terse, io);
            if (cmd is "restore" or "r" or "-R")
            {
                int rc = Restore(store, io, exist);
                store.Save(host);
                return rc;
            }
            if (cmd is "destroy" or "x" or "flush" or "f")
            {
                DestroyOrFlush(store, host, words, cmd is "destroy" or "x");
                store.Save(host);
                return 0;
            }
            bool changed = ApplyWords(store, [.. words], exist, out string? testMessage, host);
            if (testMessage is not null)
            {
                bool isIn = !testMessage.Contains(" NOT ", StringComparison.Ordinal);
                if (io.Json)
                {
                    // {"set","elem","in"}: the answer line's parts (elem in ipset's canonical form), on stdout.
                    string body = testMessage.StartsWith("Warning: ", StringComparison.Ordinal) ? testMessage["Warning: ".Length..] : testMessage;
                    string marker = isIn ? " is in set " : " is NOT in set ";
                    int at = body.LastIndexOf(marker, StringComparison.Ordinal);
                    using var json = new Chainwalk.Syntax.JsonLines(io.Out);
                    System.Text.Json.Utf8JsonWriter w = json.Begin();
                    w.WriteString("set", body[(at + marker.Length)..^1]);
                    w.WriteString("elem", body[..at]);
                    w.WriteBoolean("in", isIn);
                    json.End();
                }
                else if (!quiet) io.Err.WriteLine(testMessage);
                return isIn ? 0 : 1;
            }
            if (changed) store.Save(host);
            return 0;
        }
        catch (IpsetException ex)
        {
            // -q silences every error message, usage errors included; the exit code stays.
            if (quiet) return ex.Exit;
            io.Err.WriteLine(Prefix + ex.Message);
            if (ex.Exit == 2) io.Err.WriteLine(Hint);
            return ex.Exit;
        }
    }

    private static int Restore(IpsetStore store, ToolIo io, bool exist)
    {
        int line = 0;
        string? text;
        while ((text = io.In.ReadLine()) is not null)
        {
            line++;
            string[] w = IpsetStore.SplitWords(text);
            if (w.Length == 0 || w[0].StartsWith('#')) continue;
            // A line may carry -exist (-!): ipset then keeps it for the rest of the input.
            exist |= Array.Exists(w, x => x is "-exist" or "-!");
            bool lineExist = exist;
            w = Array.FindAll(w, x => x is not ("-exist" or "-!"));
            if (w[0] == "COMMIT") continue;
            try
            {
                ApplyWords(store, w, lineExist, out _);
            }
            catch (IpsetException ex)
            {
                string msg = ex.Exit == 2 ? ex.Message : $"Error in line {line}: {ex.Message}";
                io.Err.WriteLine(Prefix + msg);
                if (ex.Exit == 2) io.Err.WriteLine(Hint);
                return ex.Exit;
            }
        }
        return 0;
    }

    private static void DestroyOrFlush(IpsetStore store, HostStore host, List<string> words, bool destroy)
    {
        Dictionary<string, int> refs = IpsetStore.References(host);
        if (words.Count < 2)
        {
            if (!destroy)
            {
                foreach (IpSet s in store.Sets) s.Members.Clear();
                return;
            }
            if (store.Sets.Exists(s => refs.ContainsKey(s.Name)))
                throw new IpsetException("Set cannot be destroyed: it is in use by a kernel component");
            store.Sets.Clear();
            return;
        }
        IpSet set = store.Get(words[1]) ?? throw new IpsetException("The set with the given name does not exist");
        if (!destroy)
        {
            set.Members.Clear();
            return;
        }
        if (refs.ContainsKey(set.Name)) throw new IpsetException("Set cannot be destroyed: it is in use by a kernel component");
        store.Sets.Remove(set);
    }

    private static int List(IpsetStore store, HostStore host, List<string> words, bool save, bool names, bool terse, ToolIo io)
    {
        IpSet? only = null;
        if (words.Count > 1)
            only = store.Get(words[1]) ?? throw new IpsetException("The set with the given name does not exist");
        if (save && !io.Json)
        {
            io.Out.Write(store.SaveText(only));
            return 0;
        }
        Dictionary<string, int> refs = IpsetStore.References(host);
        if (io.Json)
        {
            WriteJson(io.Out, store, only, refs, names, terse);
            return 0;
        }
        var sb = new StringBuilder();
        foreach (IpSet s in store.Sets)
        {
            if (only is not null && s != only) continue;
            if (names)
            {
                sb.Append(s.Name).Append('\n');
                continue;
            }
            if (sb.Length > 0) sb.Append('\n');
            sb.Append("Name: ").Append(s.Name).Append('\n');
            sb.Append("Type: ").Append(s.Type).Append('\n');
            sb.Append("Revision: ").Append(Dec(s.Revision)).Append('\n');
            sb.Append("Header: ").Append(s.Header()).Append('\n');
            sb.Append("Size in memory: ").Append(Dec(s.SizeInMemory())).Append('\n');
            sb.Append("References: ").Append(Dec(refs.GetValueOrDefault(s.Name))).Append('\n');
            sb.Append("Number of entries: ").Append(Dec(s.Members.Count)).Append('\n');
            if (!terse)
            {
                sb.Append("Members:\n");
                foreach (IpsetMember m in s.Members) sb.Append(IpsetStore.MemberText(m)).Append('\n');
            }
        }
        io.Out.Write(sb.ToString());
        return 0;
    }

    /// <summary>
    /// <c>--json</c> list/save (docs/json.md, "ipset"): one object per set with the fields of the list text, snake_case:
    /// <c>name, type, family, revision, header, size_in_memory, references, number_of_entries, members</c> (null with
    /// -terse; each member <c>elem, timeout, nomatch, packets, bytes, comment</c>); with -name only <c>name</c>.
    /// </summary>
    private static void WriteJson(TextWriter output, IpsetStore store, IpSet? only, Dictionary<string, int> refs, bool names, bool terse)
    {
        using var json = new Chainwalk.Syntax.JsonLines(output);
        foreach (IpSet s in store.Sets)
        {
            if (only is not null && s != only) continue;
            System.Text.Json.Utf8JsonWriter w = json.Begin();
            w.WriteString("name", s.Name);
            if (names)
            {
                json.End();
                continue;
            }
            w.WriteString("type", s.Type);
            w.WriteString("family", s.Family == IpFamily.V4 ? "inet" : "inet6");
            w.WriteNumber("revision", s.Revision);
            w.WriteString("header", s.Header());
            w.WriteNumber("size_in_memory", s.SizeInMemory());
            w.WriteNumber("references", refs.GetValueOrDefault(s.Name));
            w.WriteNumber("number_of_entries", s.Members.Count);
            if (terse)
            {
                w.WriteNull("members");
            }
            else
            {
                w.WriteStartArray("members");
                foreach (IpsetMember m in s.Members)
                {
                    w.WriteStartObject();
                    w.WriteString("elem", m.Key);
                    if (m.Timeout is long t) w.WriteNumber("timeout", t);
                    else w.WriteNull("timeout");
                    w.WriteBoolean("nomatch", m.NoMatch);
                    if (m.Packets is long p)
                    {
                        w.WriteNumber("packets", p);
                        w.WriteNumber("bytes", m.Bytes ?? 0);
                    }
                    else
                    {
                        w.WriteNull("packets");
                        w.WriteNull("bytes");
                    }
                    Chainwalk.Syntax.JsonLines.StringOrNull(w, "comment", m.Comment);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            json.End();
        }
    }

    /// <summary>
    /// Applies one create/add/del/test/rename/swap command (words[0] is the command). Returns whether the
    /// store changed; for test, <paramref name="testMessage"/> is ipset's answer line.
    /// </summary>
    public static bool ApplyWords(IpsetStore store, string[] words, bool exist, out string? testMessage, HostStore? host = null)
    {
        testMessage = null;
        string cmd = words[0];
        string Name() => words.Length > 1 ? words[1] : throw Missing(cmd, "");
        switch (cmd)
        {
            case "create" or "n" or "-N":
                return Create(store, words, exist);
            case "add" or "a" or "-A" or "del" or "d" or "-D" or "test" or "t" or "-T":
            {
                string name = Name();
                if (words.Length < 3) throw Missing(cmd, "second ");
                IpSet set = store.Get(name) ?? throw new IpsetException("The set with the given name does not exist");
                long? timeout = null;
                string? refName = null;
                bool nomatch = false;
                long? packets = null, bytes = null;
                string? comment = null;
                bool before = false;
                for (int i = 3; i < words.Length; i++)
                {
                    if (set.Type == "list:set" && words[i] is "before" or "after")
                    {
                        if (i + 1 >= words.Length) throw new IpsetException($"Missing mandatory argument of option `{words[i]}'", 2);
                        before = words[i] == "before";
                        refName = words[++i];
                        continue;
                    }
                    if (words[i] is "packets" or "bytes" or "comment" && cmd.TrimStart('-')[0] is 'a' or 'A')
                    {
                        if (i + 1 >= words.Length) throw new IpsetException($"Missing mandatory argument of option `{words[i]}'", 2);
                        string v = words[++i];
                        if (words[i - 1] == "comment")
                        {
                            if (!set.Comment) throw new IpsetException("Comment cannot be used: set was created without comment support");
                            comment = v;
                            continue;
                        }
                        long n = ParseNumber(v);
                        if (!set.Counters) throw new IpsetException("Packet/byte counters cannot be used: set was created without counter support");
                        if (words[i - 1] == "packets") packets = n;
                        else bytes = n;
                        continue;
                    }
                    if (words[i] == "nomatch" && set.IsNet && cmd.TrimStart('-')[0] is 'a' or 'A' or 't' or 'T')
                    {
                        nomatch = true;
                        continue;
                    }
                    if (words[i] == "timeout")
                    {
                        if (i + 1 >= words.Length) throw new IpsetException("Missing mandatory argument of option `timeout'", 2);
                        timeout = ParseNumber(words[++i]);
                        if (set.Timeout is null) throw new IpsetException("Timeout cannot be used: set was created without timeout support");
                        continue;
                    }
                    throw new IpsetException($"Unknown argument: `{words[i]}'", 2);
                }
                char c = cmd.TrimStart('-')[0];
                if (set.Type == "list:set") return ApplyList(store, set, c, words[2], refName, before, exist, timeout, out testMessage);
                List<IpsetMember> elems = set.Type == "bitmap:port" ? BitmapElements(set, words[2]) : ParseElements(set, words[2]);
                if (c is 't' or 'T')
                {
                    // The kernel tests the first element of a range only (10.0.0.1-10.0.0.9 asks for 10.0.0.1).
                    bool hit = Contains(set, elems[0], nomatch);
                    // ipset echoes the element in its canonical form ("10.0.0.1,tcp:80"), a range as given.
                    string shown = elems.Count == 1 ? elems[0].Key : words[2];
                    testMessage = hit ? $"Warning: {shown} is in set {set.Name}." : $"{shown} is NOT in set {set.Name}.";
                    return false;
                }
                bool add = c is 'a' or 'A';
                foreach (IpsetMember e in elems)
                {
                    IpsetMember? old = set.Find(e.Key);
                    if (add)
                    {
                        if (old is not null)
                        {
                            if (!exist) throw new IpsetException("Element cannot be added to the set: it's already added");
                            old.Timeout = timeout ?? set.Timeout;
                            old.NoMatch = nomatch;
                            SetExtensions(set, old, packets, bytes, comment);
                            continue;
                        }
                        if (set.Members.Count >= set.MaxElem) throw new IpsetException("Hash is full, cannot add more elements");
                        e.Timeout = timeout ?? set.Timeout;
                        e.NoMatch = nomatch;
                        SetExtensions(set, e, packets, bytes, comment);
                        set.Members.Add(e);
                        // A bitmap lists its ports in ascending order.
                        if (set.Type == "bitmap:port") set.Members.Sort((x, y) => x.Address.CompareTo(y.Address));
                    }
                    else
                    {
                        if (old is null)
                        {
                            if (!exist) throw new IpsetException("Element cannot be deleted from the set: it's not added");
                            continue;
                        }
                        set.Members.Remove(old);
                    }
                }
                return true;
            }
            case "rename" or "e" or "-E":
            {
                string from = Name();
                if (words.Length < 3) throw Missing(cmd, "second ");
                IpSet set = store.Get(from) ?? throw new IpsetException("The set with the given name does not exist");
                if (store.Get(words[2]) is not null) throw new IpsetException("Set cannot be renamed: a set with the new name already exists");
                if (host is not null && IpsetStore.References(host).ContainsKey(from))
                    throw new IpsetException("Set cannot be renamed: it is in use by another system");
                set.Name = words[2];
                return true;
            }
            case "swap" or "w" or "-W":
            {
                string first = Name();
                if (words.Length < 3) throw Missing(cmd, "second ");
                IpSet a = store.Get(first) ?? throw new IpsetException("The set with the given name does not exist");
                IpSet b = store.Get(words[2]) ?? throw new IpsetException("Sets cannot be swapped: the second set does not exist");
                if (a.Type != b.Type || a.Family != b.Family)
                    throw new IpsetException("The sets cannot be swapped: their type does not match");
                // The kernel swaps the sets' contents under the names (each name keeps its index).
                (a.Name, b.Name) = (b.Name, a.Name);
                (a.Index, b.Index) = (b.Index, a.Index);
                store.Sets.Sort((x, y) => x.Index.CompareTo(y.Index));
                return true;
            }
            default:
                throw new IpsetException($"No command specified: unknown argument {cmd}", 2);
        }
    }

    /// <summary>Counters start at 0 in a set with counters (or as given); a comment is kept as given.</summary>
    private static void SetExtensions(IpSet set, IpsetMember m, long? packets, long? bytes, string? comment)
    {
        if (set.Counters)
        {
            m.Packets = packets ?? 0;
            m.Bytes = bytes ?? 0;
        }
        if (set.Comment) m.Comment = comment;
    }

    private static IpsetException Missing(string cmd, string which) =>
        new($"Missing {which}mandatory argument to command {Canonical(cmd)}", 2);

    private static string Canonical(string cmd) => cmd.TrimStart('-') switch
    {
        "n" or "N" => "create",
        "a" or "A" => "add",
        "d" or "D" => "del",
        "t" or "T" => "test",
        "e" or "E" => "rename",
        "w" or "W" => "swap",
        var c => c,
    };

    private static bool Create(IpsetStore store, string[] words, bool exist)
    {
        if (words.Length < 2) throw Missing("create", "");
        if (words.Length < 3) throw Missing("create", "second ");
        string name = words[1], type = words[2];
        if (name.Length > 31) throw new IpsetException($"Syntax error: setname '{name}' is longer than 31 characters", 1);
        if (Array.IndexOf(KnownTypes, type) < 0) throw new IpsetException($"Syntax error: typename '{type}' is unknown");
        IpFamily family = IpFamily.V4;
        long hashsize = 1024, maxelem = 65536, bucketsize = 12, listSize = 8;
        int rangeFrom = -1, rangeTo = -1;
        var extensions = new HashSet<string>(StringComparer.Ordinal);
        bool hash = type.StartsWith("hash:", StringComparison.Ordinal);
        long? timeout = null;
        int? netmask = null;
        uint? initval = null;
        for (int i = 3; i < words.Length; i++)
        {
            string opt = words[i];
            if (opt is "-4" or "-6" && hash)
            {
                family = opt == "-4" ? IpFamily.V4 : IpFamily.V6;
                continue;
            }
            // Extensions that are flags: per-entry counters, comments, skb info; forceadd (hash: evict when full).
            if (opt is "counters" or "comment" or "skbinfo" || (opt == "forceadd" && hash))
            {
                extensions.Add(opt);
                continue;
            }
            bool known = type switch
            {
                "bitmap:port" => opt is "range" or "timeout",
                "list:set" => opt is "size" or "timeout",
                _ => opt is "family" or "hashsize" or "maxelem" or "timeout" or "bucketsize" or "initval" || (opt == "netmask" && type == "hash:ip"),
            };
            if (!known)
                throw new IpsetException($"Unknown argument: `{opt}'", 2);
            if (i + 1 >= words.Length) throw new IpsetException($"Syntax error: option {opt} requires a value", 2);
            string v = words[++i];
            switch (opt)
            {
                case "family":
                    family = v switch
                    {
                        "inet" or "ipv4" => IpFamily.V4,
                        "inet6" or "ipv6" => IpFamily.V6,
                        _ => throw new IpsetException($"Syntax error: unknown inet family {v}"),
                    };
                    break;
                case "hashsize": hashsize = ParseNumber(v); break;
                case "maxelem": maxelem = ParseNumber(v); break;
                case "timeout": timeout = ParseNumber(v); break;
                case "bucketsize": bucketsize = ParseNumber(v); break;
                case "netmask": netmask = (int)ParseNumber(v); break;
                case "initval": initval = (uint)ParseNumber(v); break;
                case "size": listSize = Math.Max(4, ParseNumber(v)); break; // the kernel's minimum
                case "range":
                {
                    int dash = v.IndexOf('-', StringComparison.Ordinal);
                    rangeFrom = Port(dash > 0 ? v[..dash] : v, "tcp");
                    rangeTo = dash > 0 ? Port(v[(dash + 1)..], "tcp") : rangeFrom;
                    if (rangeFrom > rangeTo) (rangeFrom, rangeTo) = (rangeTo, rangeFrom);
                    break;
                }
            }
        }
        if (type == "bitmap:port" && rangeFrom < 0) throw new IpsetException("Mandatory option `range' is missing", 2);
        IpSet? old = store.Get(name);
        if (old is not null)
        {
            bool same = exist && old.Type == type && old.Family == family;
            if (!same) throw new IpsetException("Set cannot be created: set with the same name already exists");
            return false;
        }
        // The kernel rounds hashsize up to a power of two (minimum 64).
        long hs = 64;
        while (hs < hashsize) hs <<= 1;
        store.Add(new IpSet
        {
            Name = name, Type = type, Family = family, HashSize = hs, MaxElem = maxelem, Timeout = timeout,
            Netmask = netmask, BucketSize = bucketsize, InitVal = initval ?? (uint)RandomNumberGenerator.GetInt32(int.MaxValue),
            RangeFrom = rangeFrom, RangeTo = rangeTo, ListSize = listSize,
            Counters = extensions.Contains("counters"), Comment = extensions.Contains("comment"), SkbInfo = extensions.Contains("skbinfo"),
        });
        return true;
    }

    private static long ParseNumber(string v)
    {
        if (NumberParsing.TryParseCUnsigned(v, uint.MaxValue, out ulong n)) return (long)n;
        throw new IpsetException($"Syntax error: '{v}' is invalid as number");
    }

    /// <summary>
    /// test: for the hash:*net* types an address is looked up as the kernel matches packets (the most specific
    /// network holding it decides, and a nomatch one says no); a network is looked up as such, nomatch flag included.
    /// </summary>
    private static bool Contains(IpSet set, IpsetMember e, bool nomatch = false)
    {
        if (!set.IsNet) return set.Find(e.Key) is not null;
        if (e.Prefix != (set.Family == IpFamily.V4 ? 32 : 128))
            return set.Find(e.Key) is { } exact && exact.NoMatch == nomatch;
        IpsetMember? best = null;
        foreach (IpsetMember m in set.Members)
        {
            UInt128 mask = IpNet.PrefixMask(set.Family, m.Prefix);
            if ((e.Address & mask) == m.Address && e.Rest == m.Rest && (best is null || m.Prefix > best.Prefix)) best = m;
        }
        return best is { NoMatch: false };
    }

    /// <summary>Parses ADDRESS[/CIDR][,[PROTO:]PORT[-PORT]] into the members it stands for.</summary>
    private static List<IpsetMember> ParseElements(IpSet set, string text)
    {
        string addrPart = text, portPart = "", third = "";
        if (set.HasPort)
        {
            int comma = text.IndexOf(',', StringComparison.Ordinal);
            if (comma < 0) throw new IpsetException($"Syntax error: Second element is missing from {text}.");
            addrPart = text[..comma];
            portPart = text[(comma + 1)..];
            if (set.HasThird)
            {
                int comma2 = portPart.IndexOf(',', StringComparison.Ordinal);
                if (comma2 < 0) throw new IpsetException($"Syntax error: Third element is missing from {text}.");
                third = portPart[(comma2 + 1)..];
                portPart = portPart[..comma2];
            }
        }
        int full = set.Family == IpFamily.V4 ? 32 : 128;
        int prefix = full;
        string ip = addrPart;
        int slash = addrPart.IndexOf('/', StringComparison.Ordinal);
        int dashA = addrPart.IndexOf('-', StringComparison.Ordinal);
        (UInt128 Lo, UInt128 Hi)? range = null;
        if (dashA > 0 && slash < 0)
        {
            // FROM-TO (IPv4 only): each address for the hash:ip-like types, the fewest covering networks for hash:net.
            if (set.Family == IpFamily.V6)
                throw new IpsetException(set.FirstIsNet
                    ? $"Syntax error: IP address or IP/cidr must be specified: {addrPart}"
                    : $"Syntax error: plain IP address must be supplied: {addrPart}");
            UInt128 lo = IpsetStore.ParseAddress(addrPart[..dashA], set.Family), hi = IpsetStore.ParseAddress(addrPart[(dashA + 1)..], set.Family);
            if (lo > hi) (lo, hi) = (hi, lo);
            if (set.FirstIsNet && lo == 0 && hi == uint.MaxValue) throw new IpsetException("Invalid range, covers the whole address space");
            range = (lo, hi);
            ip = addrPart[..dashA];
        }
        if (slash >= 0)
        {
            ip = addrPart[..slash];
            if (!int.TryParse(addrPart[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > full)
                throw new IpsetException($"Syntax error: '{addrPart[(slash + 1)..]}' is out of range 0-{full}");
            if (!set.FirstIsNet && set.Family == IpFamily.V6)
                throw new IpsetException($"Syntax error: plain IP address must be supplied: {addrPart}");
            if (prefix == 0) throw new IpsetException("The value of the CIDR parameter of the IP address is invalid");
        }
        UInt128 addr = IpsetStore.ParseAddress(ip, set.Family);
        List<UInt128> firstAddrs = set.FirstIsNet ? [] : range is var (rl, rh) ? RangeAddresses(set, rl, rh, full) : Addresses(set, addr, prefix, full);
        var rests = new List<string>();
        if (set.HasPort)
        {
            string proto = "tcp", ports = portPart;
            int colon = portPart.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                proto = portPart[..colon];
                ports = portPart[(colon + 1)..];
                if (proto == "ipv6-icmp") proto = "icmpv6";
                if (proto is not ("tcp" or "udp" or "sctp" or "udplite" or "icmp" or "icmpv6"))
                    throw new IpsetException($"Syntax error: cannot parse '{proto}' as a protocol");
            }
            if (proto is "icmp" or "icmpv6")
            {
                bool v6 = proto == "icmpv6";
                if (v6 != (set.Family == IpFamily.V6))
                    throw new IpsetException((v6 ? "Syntax error: Protocol ICMPv6 can be used with family inet6 only" : "Syntax error: Protocol ICMP can be used with family inet only")
                        + "\nInvalid add command: missing setname");
                rests.Add((v6 ? "ipv6-icmp:" : "icmp:") + IcmpText(ports, v6));
            }
            else
            {
                string lowText = ports, highText = ports;
                int dash = ports.IndexOf('-', StringComparison.Ordinal);
                if (dash > 0)
                {
                    lowText = ports[..dash];
                    highText = ports[(dash + 1)..];
                }
                int lo = Port(lowText, proto), hi = Port(highText, proto);
                if (lo > hi) (lo, hi) = (hi, lo);
                for (int p = lo; p <= hi; p++) rests.Add(proto + ":" + Dec(p));
            }
        }
        else
        {
            rests.Add("");
        }
        var list = new List<IpsetMember>();
        if (set.HasThird)
        {
            // hash:ip,port,ip / hash:ip,port,net: the third element is a plain address, or a network.
            int p3 = full;
            string ip3 = third;
            int slash3 = third.IndexOf('/', StringComparison.Ordinal);
            if (slash3 >= 0)
            {
                if (!set.IsNet) throw new IpsetException($"Syntax error: plain IP address must be supplied: {third}");
                ip3 = third[..slash3];
                if (!int.TryParse(third[(slash3 + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out p3) || p3 > full)
                    throw new IpsetException($"Syntax error: '{third[(slash3 + 1)..]}' is out of range 0-{full}");
                if (p3 == 0) throw new IpsetException("The value of the CIDR parameter of the IP address is invalid");
            }
            UInt128 net3 = IpsetStore.ParseAddress(ip3, set.Family) & IpNet.PrefixMask(set.Family, p3);
            string t3 = IpNet.FormatAddress(net3, set.Family) + (p3 == full ? "" : "/" + Dec(p3));
            // Rest holds the parts other than the network, so that test can match an address in it.
            foreach (UInt128 x in firstAddrs)
            {
                string a = IpNet.FormatAddress(x, set.Family);
                foreach (string r in rests)
                    list.Add(new IpsetMember { Key = a + "," + r + "," + t3, Address = net3, Prefix = p3, Rest = a + "," + r });
            }
            return list;
        }
        if (set.FirstIsNet)
        {
            List<(UInt128 Net, int Prefix)> nets = range is var (lo, hi) ? Cover(lo, hi) : [(addr & IpNet.PrefixMask(set.Family, prefix), prefix)];
            foreach (var (net, pfx) in nets)
            {
                string a = IpNet.FormatAddress(net, set.Family) + (pfx == full ? "" : "/" + Dec(pfx));
                foreach (string r in rests)
                    list.Add(new IpsetMember { Key = r.Length == 0 ? a : a + "," + r, Address = net, Prefix = pfx, Rest = r });
            }
            return list;
        }
        foreach (UInt128 x in firstAddrs)
        {
            string a = IpNet.FormatAddress(x, set.Family);
            foreach (string r in rests)
                list.Add(new IpsetMember { Key = r.Length == 0 ? a : a + "," + r, Address = x, Prefix = full, Rest = r });
        }
        return list;
    }

    /// <summary>bitmap:port elements: [PROTO:]PORT[-PORT], each inside the set's range.</summary>
    private static List<IpsetMember> BitmapElements(IpSet set, string text)
    {
        string ports = text;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string proto = "tcp";
        if (colon >= 0)
        {
            proto = text[..colon];
            ports = text[(colon + 1)..];
            if (proto is not ("tcp" or "udp"))
                throw new IpsetException($"Syntax error: cannot parse '{proto}' as a protocol");
        }
        int dash = ports.IndexOf('-', StringComparison.Ordinal);
        int lo = Port(dash > 0 ? ports[..dash] : ports, proto);
        int hi = dash > 0 ? Port(ports[(dash + 1)..], proto) : lo;
        if (lo > hi) (lo, hi) = (hi, lo);
        if (lo < set.RangeFrom || hi > set.RangeTo) throw new IpsetException("Element is out of the range of the set");
        var list = new List<IpsetMember>();
        for (int p = lo; p <= hi; p++) list.Add(new IpsetMember { Key = Dec(p), Address = (UInt128)p, Prefix = 0 });
        return list;
    }

    /// <summary>
    /// list:set add/del/test: NAME [before|after REF]. The order of members is the order matching uses,
    /// so it is kept; a set that is listed is referenced by the list (it cannot be destroyed).
    /// </summary>
    private const string NotReferred = "The set to which you referred with 'before' or 'after' is not added to the set.";

    private static bool ApplyList(IpsetStore store, IpSet list, char c, string name, string? refName, bool before, bool exist, long? timeout, out string? testMessage)
    {
        testMessage = null;
        IpSet member = store.Get(name) ?? throw new IpsetException("Set to be added/deleted/tested as element does not exist.");
        if (member.Type == "list:set") throw new IpsetException("Sets with list:set type cannot be added to the set.");
        int at = list.Members.FindIndex(m => m.Key == name);
        int refAt = -1;
        if (refName is not null)
        {
            _ = store.Get(refName) ?? throw new IpsetException("Set to be added/deleted/tested as element does not exist.");
            refAt = list.Members.FindIndex(m => m.Key == refName);
        }
        if (c is 't' or 'T')
        {
            // ipset 7.17 words the answer "NAME after REF" whichever of before/after was asked.
            bool hit = refName is null ? at >= 0 : at >= 0 && refAt >= 0 && (before ? at + 1 == refAt : at == refAt + 1);
            string shown = refName is null ? name : $"{name} after {refName}";
            testMessage = hit ? $"Warning: {shown} is in set {list.Name}." : $"{shown} is NOT in set {list.Name}.";
            return false;
        }
        if (c is 'a' or 'A')
        {
            if (at >= 0)
            {
                if (!exist) throw new IpsetException("Element cannot be added to the set: it's already added");
                list.Members[at].Timeout = timeout ?? list.Timeout;
                return true;
            }
            // Kernel 6.18 does not hold a list:set to its size: a fifth set goes into a "size 4" list.
            if (refName is not null && refAt < 0) throw new IpsetException(NotReferred);
            int pos = refName is null ? list.Members.Count : before ? refAt : refAt + 1;
            list.Members.Insert(pos, new IpsetMember { Key = name, Timeout = timeout ?? list.Timeout });
            return true;
        }
        if (refName is not null && (at < 0 || refAt < 0 || !(before ? at + 1 == refAt : at == refAt + 1)))
        {
            if (!exist) throw new IpsetException(NotReferred);
            return false;
        }
        if (at < 0)
        {
            if (!exist) throw new IpsetException("Element cannot be deleted from the set: it's not added");
            return false;
        }
        list.Members.RemoveAt(at);
        return true;
    }

    /// <summary>The IPv4 networks that exactly cover FROM-TO, fewest first-to-last (as ipset splits a range for hash:net).</summary>
    private static List<(UInt128 Net, int Prefix)> Cover(UInt128 lo, UInt128 hi)
    {
        var nets = new List<(UInt128, int)>();
        ulong a = (ulong)lo, b = (ulong)hi;
        while (a <= b)
        {
            int bits = 0;
            while (bits < 32 && (a & ((1UL << (bits + 1)) - 1)) == 0 && a + (1UL << (bits + 1)) - 1 <= b) bits++;
            // A /0 is not allowed: split 0.0.0.0-255.255.255.255 into two /1.
            if (bits == 32) bits = 31;
            nets.Add((a, 32 - bits));
            a += 1UL << bits;
        }
        return nets;
    }

    /// <summary>The addresses of an IPv4 FROM-TO range (by netmask steps when the set has one).</summary>
    private static List<UInt128> RangeAddresses(IpSet set, UInt128 lo, UInt128 hi, int full)
    {
        int step = set.Netmask is int nm ? full - nm : 0;
        UInt128 inc = UInt128.One << step;
        UInt128 m = IpNet.FullMask(set.Family) & ~(inc - 1);
        UInt128 first = lo & m;
        if ((hi - first) / inc >= 65536) throw new IpsetException("Hash is full, cannot add more elements");
        var list = new List<UInt128>();
        for (UInt128 x = first; x <= hi; x += inc) list.Add(x);
        return list;
    }

    /// <summary>The addresses a first element "ADDR[/CIDR]" of hash:ip-like types stands for (an IPv4 CIDR: each address, by netmask steps).</summary>
    private static List<UInt128> Addresses(IpSet set, UInt128 addr, int prefix, int full)
    {
        if (set.Netmask is int nm) prefix = Math.Min(prefix, nm);
        UInt128 m = IpNet.PrefixMask(set.Family, prefix);
        UInt128 first = addr & m, last = first | (IpNet.FullMask(set.Family) & ~m);
        int step = set.Netmask is int n2 ? full - n2 : 0;
        UInt128 inc = UInt128.One << step;
        if ((last - first) / inc >= 65536) throw new IpsetException("Hash is full, cannot add more elements");
        var list = new List<UInt128>();
        for (UInt128 x = first; ; x += inc)
        {
            list.Add(x);
            if (last - x < inc) break;
        }
        return list;
    }

    /// <summary>
    /// An ICMP/ICMPv6 element "NAME" or "TYPE/CODE" in the canonical form ipset lists: the name of the
    /// type/code when it has one (names as iptables' icmp matches know them; a name for a whole type means
    /// its code 0), else "TYPE/CODE".
    /// </summary>
    private static string IcmpText(string text, bool v6)
    {
        XtParse.IcmpName[] names = v6 ? Icmp6Match.Codes : IcmpMatch.Codes;
        int type = -1, code = -1;
        foreach (XtParse.IcmpName n in names)
        {
            if (string.Equals(n.Name, text, StringComparison.OrdinalIgnoreCase))
            {
                type = n.Type;
                code = n.CodeMin;
                break;
            }
        }
        if (type < 0)
        {
            string[] parts = text.Split('/');
            if (parts.Length != 2
                || !NumberParsing.TryParseCUnsigned(parts[0], 255, out ulong t, 0, 10)
                || !NumberParsing.TryParseCUnsigned(parts[1], 255, out ulong c, 0, 10))
                throw new IpsetException($"Cannot parse {text} as an {(v6 ? "ICMPv6" : "ICMP")} type/code.");
            type = (int)t;
            code = (int)c;
        }
        foreach (XtParse.IcmpName n in names)
        {
            if (n.Type == type && n.CodeMin == code) return n.Name;
        }
        return Dec(type) + "/" + Dec(code);
    }

    private static int Port(string text, string proto)
    {
        if (NumberParsing.TryParseCUnsigned(text, ulong.MaxValue, out ulong v, 0, 10))
        {
            if (v > 65535)
                throw new IpsetException($"Syntax error: '{text}' is out of range 0-65535\nSyntax error: '{proto}' is invalid as number\ncannot parse '{text}' as a {proto} port");
            return (int)v;
        }
        if (NameDb.System.TryGetServicePort(text, proto, out int p)) return p;
        throw new IpsetException($"Syntax error: '{text}' is invalid as number\nSyntax error: '{proto}' is invalid as number\ncannot parse '{text}' as a {proto} port");
    }

    private static string Dec(long v) => v.ToString(CultureInfo.InvariantCulture);
}
