using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Host;

/// <summary>An ipset error: the message ipset 7.17 prints after "ipset v7.17: " and its exit code.</summary>
public sealed class IpsetException(string message, int exit = 1) : Exception(message)
{
    public int Exit { get; } = exit;
}

/// <summary>One member of a set: its canonical text (as ipset lists it) and its own options.</summary>
public sealed class IpsetMember
{
    public required string Key { get; init; }

    /// <summary>For hash:net types: the network (value, prefix); for others the address with a full prefix.</summary>
    public UInt128 Address { get; init; }

    public int Prefix { get; init; }

    /// <summary>The part after the address ("tcp:80"), empty for hash:ip / hash:net.</summary>
    public string Rest { get; init; } = "";

    /// <summary>Counters of a set created with "counters" (null otherwise).</summary>
    public long? Packets { get; set; }

    public long? Bytes { get; set; }

    /// <summary>Comment of a set created with "comment" (null when none was given).</summary>
    public string? Comment { get; set; }

    /// <summary>hash:*net* "nomatch": the network is an exception inside a larger one.</summary>
    public bool NoMatch { get; set; }

    /// <summary>Seconds, as given (see <see cref="IpSet.Timeout"/>).</summary>
    public long? Timeout { get; set; }

    /// <summary>
    /// The host-clock second at which the entry expires, for entries the SET target added with a timeout
    /// (null: never; entries added by the ipset command do not expire, see <see cref="IpSet.Timeout"/>).
    /// Not kept in ipset.rules yet.
    /// </summary>
    public double? ExpiresAt { get; set; }
}

/// <summary>A set as ipset create made it.</summary>
public sealed class IpSet
{
    public required string Name { get; set; }
    public required string Type { get; init; }
    public IpFamily Family { get; init; } = IpFamily.V4;
    public long HashSize { get; init; } = 1024;
    public long MaxElem { get; init; } = 65536;

    /// <summary>
    /// Default timeout of a set created with "timeout N". Chainwalk's host has no running kernel clock for
    /// sets: entries never expire and are listed with the timeout they were given (the kernel lists the
    /// seconds left, usually one less as soon as a tick has passed).
    /// </summary>
    public long? Timeout { get; init; }

    /// <summary>hash:ip netmask (prefix length), null when not given.</summary>
    public int? Netmask { get; init; }

    public long BucketSize { get; init; } = 12;

    /// <summary>The kernel picks a random hash seed; we pick one at create time and keep it.</summary>
    public uint InitVal { get; init; }

    public List<IpsetMember> Members { get; } = [];

    /// <summary>Create-time extensions: per-entry packet/byte counters, comments, skb info.</summary>
    public bool Counters { get; init; }

    public bool Comment { get; init; }

    public bool SkbInfo { get; init; }

    private string ExtensionsText() =>
        (Counters ? " counters" : "") + (Comment ? " comment" : "") + (SkbInfo ? " skbinfo" : "");

    /// <summary>The kernel's slot for the set: a new set takes the lowest free one, and sets list in slot order.</summary>
    public int Index { get; set; }

    public int Revision => Type switch
    {
        "hash:ip" => 6,
        "hash:net" => 7,
        "hash:ip,port" => 7,
        "hash:net,port" => 8,
        "hash:ip,port,ip" => 6,
        "hash:ip,port,net" => 8,
        "bitmap:port" => 3,
        "list:set" => 3,
        _ => 0,
    };

    /// <summary>Types whose elements hold a network (test matches an address inside it).</summary>
    public bool IsNet => Type is "hash:net" or "hash:net,port" or "hash:ip,port,net";

    /// <summary>Types whose first element is a network.</summary>
    public bool FirstIsNet => Type is "hash:net" or "hash:net,port";

    public bool HasPort => Type is "hash:ip,port" or "hash:net,port" or "hash:ip,port,ip" or "hash:ip,port,net";

    public bool HasThird => Type is "hash:ip,port,ip" or "hash:ip,port,net";

    /// <summary>hash:* types have a family; bitmap:port and list:set do not (any family's rules can use them).</summary>
    public bool HasFamily => Type.StartsWith("hash:", StringComparison.Ordinal);

    /// <summary>bitmap:port range.</summary>
    public int RangeFrom { get; init; }

    public int RangeTo { get; init; }

    /// <summary>list:set size.</summary>
    public long ListSize { get; init; } = 8;

    /// <summary>Header as list and save print it.</summary>
    public string Header()
    {
        var sb = new StringBuilder();
        if (Type == "bitmap:port")
        {
            sb.Append("range ").Append(Dec(RangeFrom)).Append('-').Append(Dec(RangeTo));
            if (Timeout is long bt) sb.Append(" timeout ").Append(Dec(bt));
            return sb.Append(ExtensionsText()).ToString();
        }
        if (Type == "list:set")
        {
            sb.Append("size ").Append(Dec(ListSize));
            if (Timeout is long lt) sb.Append(" timeout ").Append(Dec(lt));
            return sb.Append(ExtensionsText()).ToString();
        }
        sb.Append("family ").Append(Family == IpFamily.V4 ? "inet" : "inet6");
        sb.Append(" hashsize ").Append(Dec(HashSize)).Append(" maxelem ").Append(Dec(MaxElem));
        if (Netmask is int nm) sb.Append(" netmask ").Append(Dec(nm));
        if (Timeout is long t) sb.Append(" timeout ").Append(Dec(t));
        sb.Append(ExtensionsText());
        sb.Append(" bucketsize ").Append(Dec(BucketSize));
        sb.Append(" initval 0x").Append(InitVal.ToString("x8", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>
    /// "Size in memory" is the kernel's allocation for the set, which depends on its memory layout, so it
    /// cannot be derived; we print what kernel 6.18 (x86_64) printed in a namespace, as a formula:
    /// a base (set and table structures: IPv4 216 for hash:ip and hash:ip,port, 456 for the hash:net types,
    /// which keep per-prefix counters; IPv6 224 hash:ip, 232 hash:ip,port, 1240 the hash:net types), plus
    /// 24 per lock region beyond the first (one region per 1024 buckets), plus per entry one bucket of its
    /// own (IPv4: 40 hash:ip, 48 the others; IPv6: 64 hash:ip, 72 the others; with a timeout 24 (IPv4) or 48
    /// (IPv6) more, measured for hash:ip and hash:net only). Where entries share a bucket (hash collisions,
    /// which depend on the random initval) the kernel allocates less, so large sets print a little more than
    /// the kernel would. The counters/comment/skbinfo extensions are not counted (the kernel adds their room
    /// per entry, and comments separately).
    /// </summary>
    public long SizeInMemory()
    {
        bool v6 = Family == IpFamily.V6;
        // bitmap:port: the structure (72) and the bitmap in longs, and with a timeout one long per port.
        if (Type == "bitmap:port")
        {
            long n = RangeTo - RangeFrom + 1;
            return 72 + ((n + 63) / 64 * 8) + (Timeout is null ? 0 : 8 * n);
        }
        // list:set: 80, and 48 per member.
        if (Type == "list:set") return 80 + 48L * Members.Count;
        if (HasThird)
        {
            // hash:ip,port,ip 208 / 232 (IPv6), hash:ip,port,net 464 / 1256; 56 per entry (IPv4), 104 (IPv6).
            long b = (v6, IsNet) switch { (false, false) => 208, (false, true) => 464, (true, false) => 232, (true, true) => 1256 };
            b += 24 * (Math.Max(1, HashSize / 1024) - 1);
            return b + (v6 ? 104 : 56) * Members.Count + (Timeout is null ? 0 : (v6 ? 48 : 24) * Members.Count);
        }
        long baseSize = (v6, FirstIsNet, HasPort) switch
        {
            (false, true, _) => 456,
            (false, false, _) => 216,
            (true, true, _) => 1240,
            (true, false, false) => 224,
            (true, false, true) => 232,
        };
        baseSize += 24 * (Math.Max(1, HashSize / 1024) - 1);
        long per = Type == "hash:ip" ? (v6 ? 64 : 40) : (v6 ? 72 : 48);
        if (Timeout is not null) per += v6 ? 48 : 24;
        return baseSize + per * Members.Count;
    }

    public IpsetMember? Find(string key) => Members.Find(m => m.Key == key);

    private static string Dec(long v) => v.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// The ipset sets of a virtual host, kept in <c>ipset.rules</c> in the host directory as <c>ipset save</c>
/// text (read back with the restore parser). Written atomically; callers hold the host lock.
/// Members are kept and listed in the order they were added: the kernel lists them in the order of its
/// hash table, which depends on the random initval, so no fixed order can match it.
/// </summary>
public sealed class IpsetStore
{
    public const string FileName = "ipset.rules";

    public List<IpSet> Sets { get; } = [];

    public IpSet? Get(string name) => Sets.Find(s => s.Name == name);

    /// <summary>Slots the next create would use when restored from a file with holes (see <see cref="Load"/>).</summary>
    private readonly List<int> _pendingIndexes = [];

    /// <summary>Adds a set in the lowest free slot (or the slot the stored file recorded for it).</summary>
    public void Add(IpSet set)
    {
        if (_pendingIndexes.Count > 0)
        {
            set.Index = _pendingIndexes[0];
            _pendingIndexes.RemoveAt(0);
        }
        else
        {
            int i = 0;
            while (Sets.Exists(s => s.Index == i)) i++;
            set.Index = i;
        }
        Sets.Add(set);
        Sets.Sort((x, y) => x.Index.CompareTo(y.Index));
    }

    public static IpsetStore Load(HostStore host)
    {
        string path = Path.Combine(host.Directory, FileName);
        var store = new IpsetStore();
        if (!File.Exists(path)) return store;
        int line = 0;
        // A list:set may sit in a lower slot than the sets it holds: its adds are applied last.
        var deferred = new List<(int Line, string Text)>();
        foreach (string raw in File.ReadAllText(path).Split('\n'))
        {
            line++;
            if (raw.Trim().Length == 0) continue;
            if (raw.StartsWith(SlotsComment, StringComparison.Ordinal))
            {
                foreach (string w in SplitWords(raw[SlotsComment.Length..]))
                    store._pendingIndexes.Add(int.Parse(w, NumberStyles.None, CultureInfo.InvariantCulture));
                continue;
            }
            if (raw.StartsWith('#')) continue;
            string[] words = SplitWords(raw);
            if (words.Length > 1 && words[0] == "add" && store.Get(words[1]) is { Type: "list:set" })
            {
                deferred.Add((line, raw));
                continue;
            }
            Apply(line, words);
        }
        foreach (var (l, text) in deferred) Apply(l, SplitWords(text));
        return store;

        void Apply(int at, string[] words)
        {
            try
            {
                Chainwalk.Compat.IpsetCompat.ApplyWords(store, words, exist: false, out _);
            }
            catch (IpsetException ex)
            {
                throw new InvalidDataException($"{path}: line {at}: {ex.Message}", ex);
            }
        }
    }

    /// <summary>
    /// The comment line (ipset restore skips comments) that keeps the kernel slot of each set in the file,
    /// so that a set created after a destroy takes the freed slot, as in the kernel.
    /// </summary>
    private const string SlotsComment = "# chainwalk slots:";

    /// <summary>
    /// The sets' names and families (null for bitmap:port and list:set) from the create lines only: what
    /// iptables needs, without parsing the members of large sets on every iptables command.
    /// </summary>
    public static List<(string Name, IpFamily? Family)> LoadNames(HostStore host)
    {
        var names = new List<(string, IpFamily?)>();
        string path = Path.Combine(host.Directory, FileName);
        if (!File.Exists(path)) return names;
        foreach (string line in File.ReadLines(path))
        {
            if (!line.StartsWith("create ", StringComparison.Ordinal)) continue;
            string[] w = SplitWords(line);
            if (w.Length < 3) continue;
            IpFamily? family = null;
            if (w[2].StartsWith("hash:", StringComparison.Ordinal))
                family = Array.IndexOf(w, "inet6") > 2 ? IpFamily.V6 : IpFamily.V4;
            names.Add((w[1], family));
        }
        return names;
    }

    public void Save(HostStore host)
    {
        string slots = SlotsComment + string.Concat(Sets.Select(s => " " + s.Index.ToString(CultureInfo.InvariantCulture))) + "\n";
        HostStore.WriteAtomic(Path.Combine(host.Directory, FileName), slots + SaveText(null));
    }

    /// <summary>ipset save [NAME] text.</summary>
    public string SaveText(IpSet? only)
    {
        var sb = new StringBuilder();
        foreach (IpSet s in Sets)
        {
            if (only is not null && s != only) continue;
            sb.Append("create ").Append(s.Name).Append(' ').Append(s.Type).Append(' ').Append(s.Header()).Append('\n');
            foreach (IpsetMember m in s.Members) sb.Append("add ").Append(s.Name).Append(' ').Append(MemberText(m)).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>A member as list and save print it: KEY [timeout N] [nomatch] [packets P bytes B] [comment "TEXT"].</summary>
    public static string MemberText(IpsetMember m)
    {
        var sb = new StringBuilder(m.Key);
        if (m.Timeout is long t) sb.Append(" timeout ").Append(t.ToString(CultureInfo.InvariantCulture));
        if (m.NoMatch) sb.Append(" nomatch");
        if (m.Packets is long p) sb.Append(" packets ").Append(p.ToString(CultureInfo.InvariantCulture)).Append(" bytes ").Append((m.Bytes ?? 0).ToString(CultureInfo.InvariantCulture));
        if (m.Comment is string c) sb.Append(" comment \"").Append(c).Append('"');
        return sb.ToString();
    }

    /// <summary>Splits a restore line into words as ipset does: blanks separate, "double quotes" group (comments).</summary>
    public static string[] SplitWords(string line)
    {
        // Blank-separated; "double quotes" group a word (a comment with blanks), and are removed.
        var words = new List<string>();
        var cur = new StringBuilder();
        bool quoted = false, any = false;
        foreach (char ch in line)
        {
            if (ch == '"')
            {
                quoted = !quoted;
                any = true;
                continue;
            }
            if (!quoted && ch is ' ' or '\t' or '\r')
            {
                if (any) words.Add(cur.ToString());
                cur.Clear();
                any = false;
                continue;
            }
            cur.Append(ch);
            any = true;
        }
        if (any) words.Add(cur.ToString());
        return [.. words];
    }

    /// <summary>Names of sets that saved iptables/ip6tables rules of the host use (-m set, -j SET), with counts.</summary>
    public static Dictionary<string, int> References(HostStore host)
    {
        var refs = new Dictionary<string, int>(StringComparer.Ordinal);
        // A set that is a member of a list:set is referenced by it.
        string sets = Path.Combine(host.Directory, FileName);
        if (File.Exists(sets))
        {
            var lists = new HashSet<string>(StringComparer.Ordinal);
            foreach (string line in File.ReadLines(sets))
            {
                string[] w = SplitWords(line);
                if (w.Length >= 3 && w[0] == "create" && w[2] == "list:set") lists.Add(w[1]);
                else if (w.Length >= 3 && w[0] == "add" && lists.Contains(w[1])) refs[w[2]] = refs.GetValueOrDefault(w[2]) + 1;
            }
        }
        foreach (IpFamily f in new[] { IpFamily.V4, IpFamily.V6 })
        {
            string path = Path.Combine(host.Directory, HostStore.RulesFile(f));
            if (!File.Exists(path)) continue;
            foreach (string line in File.ReadLines(path))
            {
                if (!line.StartsWith('-') && !line.StartsWith('[')) continue;
                string[] w = SplitWords(line);
                for (int i = 0; i + 1 < w.Length; i++)
                {
                    if (w[i] is "--match-set" or "--add-set" or "--del-set" or "--map-set")
                        refs[w[i + 1]] = refs.GetValueOrDefault(w[i + 1]) + 1;
                }
            }
        }
        return refs;
    }

    /// <summary>Parses an address as ipset does (getaddrinfo numeric forms; IPv4 accepts inet_aton's short forms).</summary>
    public static UInt128 ParseAddress(string text, IpFamily family)
    {
        if (family == IpFamily.V4)
        {
            if (!text.Contains(':', StringComparison.Ordinal) && IPAddress.TryParse(text, out IPAddress? a) && a.AddressFamily == AddressFamily.InterNetwork)
                return IpNet.FromIPAddress(a);
            throw new IpsetException($"Syntax error: cannot parse {text}: resolving to IPv4 address failed");
        }
        if (IpNet.TryParseV6Numeric(text, out UInt128 v)) return v;
        throw new IpsetException($"Syntax error: cannot parse {text}: resolving to IPv6 address failed");
    }
}
