using System.Globalization;
using System.Text;
using Chainwalk.Extensions;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Host;

/// <summary>
/// The on-disk form of a virtual host: a directory with <c>network.conf</c> (interfaces, addresses,
/// routes, sysctls, clock; see docs/host-state.md), <c>iptables.rules</c> and <c>ip6tables.rules</c>
/// (iptables-save -c text). Writes are atomic (temp file, fsync, rename) and made under an exclusive
/// lock on <c>lock</c>, with iptables' -w semantics.
/// </summary>
public sealed class HostStore
{
    public const string NetworkFile = "network.conf";
    public const string LockFile = "lock";

    public HostStore(string directory)
    {
        Directory = Path.GetFullPath(directory);
    }

    public string Directory { get; }

    public static string RulesFile(IpFamily family) => family == IpFamily.V4 ? "iptables.rules" : "ip6tables.rules";

    /// <summary>--host DIR, else $CHAINWALK_HOST, else ~/.chainwalk/host.</summary>
    public static string ResolveDirectory(string? option)
    {
        if (!string.IsNullOrEmpty(option)) return option;
        string? env = Environment.GetEnvironmentVariable("CHAINWALK_HOST");
        if (!string.IsNullOrEmpty(env)) return env;
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (string.IsNullOrEmpty(home)) home = Environment.GetEnvironmentVariable("HOME") ?? "/tmp";
        return Path.Combine(home, ".chainwalk", "host");
    }

    /// <summary>The lock file iptables names in its messages (xtables' XT_LOCK_NAME).</summary>
    public const string XtablesLockName = "/run/xtables.lock";

    /// <summary>
    /// Takes the host lock as xtables_lock_or_exit of iptables(-legacy) 1.8.9 does. <paramref name="waitSeconds"/>:
    /// 0 = do not wait, null = wait forever, else wait up to that many seconds (iptables blocks in flock under an
    /// alarm; we poll). When the lock stays busy, throws (exit 4) with its two lines: "Can't lock
    /// /run/xtables.lock: Resource temporarily unavailable" and "Another app is currently holding the xtables
    /// lock. " followed by "Perhaps you want to use the -w option?" or "Stopped waiting after Ns.".
    /// <paramref name="interval"/> and <paramref name="progress"/> are accepted for compatibility and unused:
    /// 1.8.9 ignores -W and prints no progress.
    /// </summary>
    public HostLock Lock(double? waitSeconds = 0, TimeSpan? interval = null, TextWriter? progress = null)
    {
        _ = interval;
        _ = progress;
        System.IO.Directory.CreateDirectory(Directory);
        string path = Path.Combine(Directory, LockFile);
        DateTime deadline = waitSeconds is null ? DateTime.MaxValue : DateTime.UtcNow.AddSeconds(waitSeconds.Value);
        var nap = TimeSpan.FromMilliseconds(1);
        while (true)
        {
            try
            {
                var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new HostLock(fs);
            }
            catch (IOException) when (waitSeconds is null || (waitSeconds > 0 && DateTime.UtcNow < deadline))
            {
                // Back off from 1 ms to 20 ms so that a queue of waiters does not spin.
                Thread.Sleep(nap);
                if (nap < TimeSpan.FromMilliseconds(20)) nap *= 2;
            }
            catch (IOException)
            {
                string tail = waitSeconds is null or 0
                    ? "Perhaps you want to use the -w option?"
                    : $"Stopped waiting after {(int)waitSeconds.Value}s.";
                string msg = $"Can't lock {XtablesLockName}: Resource temporarily unavailable\nAnother app is currently holding the xtables lock. {tail}";
                throw new XtablesException(XtablesExit.ResourceProblem, msg) { Verbatim = true };
            }
        }
    }

    public bool Exists => File.Exists(Path.Combine(Directory, NetworkFile));

    /// <summary>Loads the host; a directory without state is a fresh host.</summary>
    public VirtualHost Load()
    {
        string net = Path.Combine(Directory, NetworkFile);
        VirtualHost host = File.Exists(net) ? ParseNetwork(File.ReadAllText(net)) : VirtualHost.CreateFresh();
        host.V4 = LoadRules(IpFamily.V4);
        host.V6 = LoadRules(IpFamily.V6);
        return host;
    }

    /// <summary>
    /// Loads links, addresses, routes, sysctls and the clock only (the rulesets stay empty): for ip and
    /// sysctl, which save nothing but network.conf, so they need not parse the rules.
    /// </summary>
    public VirtualHost LoadNetwork()
    {
        string net = Path.Combine(Directory, NetworkFile);
        return File.Exists(net) ? ParseNetwork(File.ReadAllText(net)) : VirtualHost.CreateFresh();
    }

    public Ruleset LoadRules(IpFamily family)
    {
        string path = Path.Combine(Directory, RulesFile(family));
        var empty = new Ruleset(family);
        if (!File.Exists(path)) return empty;
        UseHostObjects();
        if (ShortLivedProcess.Enabled && new FileInfo(path).Length >= 1 << 20) ShortLivedProcess.LargeHeap();
        // Read as File.ReadAllText would, but decoded a line at a time (RestoreReader.ApplyUtf8): no string of the whole file.
        byte[] bytes = File.ReadAllBytes(path);
        int body = RestoreReader.Utf8Body(bytes);
        var reader = new RestoreReader(family, family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore") { VerifySaveForms = true };
        try
        {
            Ruleset loaded;
            var options = new RestoreOptions { Counters = true };
            using (ShortLivedProcess.BulkLoad(bytes.Length))
            {
                loaded = body >= 0 ? reader.ApplyUtf8(empty, bytes.AsSpan(body), options) : reader.Apply(empty, File.ReadAllText(path), options);
            }
            _hadState.Add(family);
            return loaded;
        }
        catch (XtablesException ex)
        {
            throw new InvalidDataException($"{path}: line {ex.Line}: {ex.Message.TrimEnd()}", ex);
        }
    }

    /// <summary>
    /// Makes the host's ipsets (ipset.rules) and nfacct objects (nfacct.conf) known to the -m set / -j SET /
    /// -m nfacct extensions, as the kernel knows the
    /// sets of its namespace when a rule is added or loaded. Objects already in <see cref="KernelObjects.Current"/>
    /// (tests put some there) stay. Called before rules are parsed: by LoadRules, and by the iptables front
    /// ends before they parse a command line.
    /// </summary>
    public void UseHostObjects()
    {
        bool sets = File.Exists(Path.Combine(Directory, IpsetStore.FileName));
        bool accounting = File.Exists(Path.Combine(Directory, NfacctStore.FileName));
        if (!sets && !accounting) return;
        KernelObjects current = KernelObjects.Current;
        var k = new KernelObjects();
        foreach (var kv in current.IpSets) k.IpSets[kv.Key] = kv.Value;
        k.RateEstimators.UnionWith(current.RateEstimators);
        k.NfacctObjects.UnionWith(current.NfacctObjects);
        if (sets)
        {
            foreach (var (name, family) in IpsetStore.LoadNames(this)) k.IpSets[name] = family;
        }
        if (accounting)
        {
            foreach (NfacctObject o in NfacctStore.Load(this).Objects) k.NfacctObjects.Add(o.Name);
        }
        KernelObjects.Current = k;
    }

    /// <summary>Writes everything (call with the lock held).</summary>
    public void Save(VirtualHost host)
    {
        SaveNetwork(host);
        SaveRules(host.V4);
        SaveRules(host.V6);
    }

    /// <summary>
    /// Writes a family's rules. Each rule's line must load back to the same line: a few rules have an iptables-save
    /// form that iptables-restore cannot load (the real tools share this trap, e.g. an IDLETIMER label with a space);
    /// storing one would leave a host that no longer loads, so the change is refused instead. Rules proven by
    /// <see cref="SaveFormCheck"/> are not parsed again; the others are, one line each. The text is formatted once
    /// and written through one buffered stream.
    /// </summary>
    public void SaveRules(Ruleset rules)
    {
        string program = rules.Family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore";
        RestoreReader? reader = null;
        bool hadState = _hadState.Contains(rules.Family);
        int lineNo = 0;
        foreach (Table t in rules.Tables)
        {
            lineNo++; // *table
            foreach (Chain c in t.Chains) lineNo++;
            foreach (Chain c in t.Chains)
            {
                foreach (Rule r in c.Rules)
                {
                    lineNo++;
                    if (r.SaveFormVerified || SaveFormCheck.ReloadsExactly(r, c.Name)) continue;
                    string body = RuleWriter.SaveBody(r);
                    reader ??= new RestoreReader(rules.Family, program);
                    string? problem = SaveFormCheck.Reload(rules.Family, t.Name, c.Name, body, reader);
                    if (problem is null)
                    {
                        r.SaveFormVerified = true;
                        continue;
                    }
                    string line = "[" + r.Counters.Packets.ToString(CultureInfo.InvariantCulture) + ":" + r.Counters.Bytes.ToString(CultureInfo.InvariantCulture) + "] -A " + c.Name + body;
                    if (hadState || problem == "differs") NotStored(line.Split('\n')[0]);
                    throw new XtablesException(XtablesExit.OtherProblem,
                        $"chainwalk: not stored: the iptables-save form of the new rules does not load back (line {lineNo}: {problem}); the real iptables would accept the rule but its iptables-save output could not be restored either") { Verbatim = true };
                }
            }
            lineNo++; // COMMIT
        }
        // Every rule checked: the text is written straight into the file as UTF-8, 64 KiB at a time (not held whole).
        WriteAtomic(Path.Combine(Directory, RulesFile(rules.Family)), (Stream stream) =>
        {
            var writer = new Utf8SaveWriter(stream, NameDb.System);
            foreach (Table t in rules.Tables) writer.WriteTable(t, counters: true);
            writer.Flush();
        });
        _hadState.Add(rules.Family);
    }

    /// <summary>The families whose rules file this store has read or written (messages differ for a first save).</summary>
    private readonly HashSet<IpFamily> _hadState = new();

    private static void NotStored(string line) =>
        throw new XtablesException(XtablesExit.OtherProblem,
            $"chainwalk: not stored: the iptables-save form of a rule does not load back to the same rule: {line}") { Verbatim = true };

    public void SaveNetwork(VirtualHost host)
    {
        WriteAtomic(Path.Combine(Directory, NetworkFile), FormatNetwork(host));
    }

    /// <summary>Writes a file so that readers see the old or the new content, never a mix: temp, fsync, rename, fsync dir.</summary>
    public static void WriteAtomic(string path, string content)
    {
        string dir = Path.GetDirectoryName(path)!;
        System.IO.Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ".tmp");
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            byte[] bytes = Encoding.UTF8.GetBytes(content);
            fs.Write(bytes, 0, bytes.Length);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
        FsyncDirectory(dir);
    }

    /// <summary><see cref="WriteAtomic(string, string)"/> of a StringBuilder's text, encoded chunk by chunk (no copy of the whole text).</summary>
    public static void WriteAtomic(string path, StringBuilder content) => WriteAtomic(path, sink => sink.Drain(content));

    /// <summary>
    /// <see cref="WriteAtomic(string, string)"/> of text that <paramref name="write"/> produces piece by piece through a
    /// <see cref="Utf8Sink"/> (UTF-8, no BOM): temp file, fsync, rename, fsync of the directory. If
    /// <paramref name="write"/> throws, the temp file is removed and the file keeps its old content.
    /// </summary>
    public static void WriteAtomic(string path, Action<Utf8Sink> write) => WriteAtomic(path, (Stream stream) =>
    {
        var sink = new Utf8Sink(stream);
        write(sink);
        sink.Finish();
    });

    /// <summary>
    /// <see cref="WriteAtomic(string, string)"/> of bytes that <paramref name="write"/> writes into the (unbuffered) temp
    /// file stream: temp file, fsync, rename, fsync of the directory. If <paramref name="write"/> throws, the temp file
    /// is removed and the file keeps its old content.
    /// </summary>
    public static void WriteAtomic(string path, Action<Stream> write)
    {
        string dir = Path.GetDirectoryName(path)!;
        System.IO.Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ".tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
        File.Move(tmp, path, overwrite: true);
        FsyncDirectory(dir);
    }

    /// <summary>Encodes text to UTF-8 into a file through one reused buffer.</summary>
    public sealed class Utf8Sink
    {
        /// <summary>How much text a producer gathers before it drains it (a few pages of the file at a time).</summary>
        public const int ChunkChars = 1 << 16;

        private readonly Stream _stream;
        private readonly Encoder _encoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetEncoder();
        private readonly byte[] _buffer = new byte[(ChunkChars * 3) + 16];

        internal Utf8Sink(Stream stream) => _stream = stream;

        /// <summary>Writes the text in <paramref name="sb"/> and empties it.</summary>
        public void Drain(StringBuilder sb)
        {
            foreach (ReadOnlyMemory<char> chunk in sb.GetChunks())
            {
                ReadOnlySpan<char> chars = chunk.Span;
                while (chars.Length > 0)
                {
                    _encoder.Convert(chars, _buffer, flush: false, out int used, out int written, out _);
                    _stream.Write(_buffer, 0, written);
                    chars = chars[used..];
                }
            }
            sb.Clear();
        }

        internal void Finish()
        {
            _encoder.Convert(ReadOnlySpan<char>.Empty, _buffer, flush: true, out _, out int last, out _);
            _stream.Write(_buffer, 0, last);
        }
    }

    private static void FsyncDirectory(string dir)
    {
        try
        {
            using var handle = File.OpenHandle(dir, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
            RandomAccess.FlushToDisk(handle);
        }
        catch (UnauthorizedAccessException)
        {
            // Some file systems refuse to open directories; the rename is still atomic.
        }
        catch (IOException)
        {
        }
    }

    public static string FormatNetwork(VirtualHost host)
    {
        var sb = new StringBuilder();
        sb.Append("# Chainwalk virtual host state, format 1 (see docs/host-state.md)\n");
        sb.Append("clock ").Append(host.Clock.ToString("0.000000", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("ifindex ").Append(host.NextIfIndex.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (Link l in host.Links)
        {
            sb.Append("link ").Append(l.Name).Append(" index ").Append(l.Index.ToString(CultureInfo.InvariantCulture))
              .Append(" type ").Append(l.Kind).Append(" state ").Append(l.Up ? "up" : "down")
              .Append(" mac ").Append(l.Mac).Append(" mtu ").Append(l.Mtu.ToString(CultureInfo.InvariantCulture))
              .Append(" qdisc ").Append(Network.Qdisc(l));
            if (l.Peer is not null) sb.Append(" peer ").Append(l.Peer);
            sb.Append('\n');
        }
        foreach (InterfaceAddress a in host.Addresses)
        {
            sb.Append("addr ").Append(a.Device).Append(a.Family == IpFamily.V4 ? " inet " : " inet6 ").Append(a.Text);
            if (a.Broadcast is { } brd) sb.Append(" brd ").Append(IpNet.FormatAddress(brd, a.Family));
            if (a.Tentative) sb.Append(" tentative");
            if (a.NoDad) sb.Append(" nodad");
            if (a.Label is not null) sb.Append(" label ").Append(a.Label);
            sb.Append('\n');
        }
        foreach (Route r in host.Routes)
        {
            sb.Append("route ").Append(r.Family == IpFamily.V4 ? "inet " : "inet6 ").Append(r.PrefixText);
            if (r.Via is { } via) sb.Append(" via ").Append(IpNet.FormatAddress(via, r.Family));
            if (r.Device is not null) sb.Append(" dev ").Append(r.Device);
            if (r.Src is { } src) sb.Append(" src ").Append(IpNet.FormatAddress(src, r.Family));
            if (r.Metric != 0) sb.Append(" metric ").Append(r.Metric.ToString(CultureInfo.InvariantCulture));
            if (r.Proto is not null) sb.Append(" proto ").Append(r.Proto);
            if (r.Table is not null) sb.Append(" table ").Append(r.Table);
            sb.Append('\n');
        }
        foreach (string t in host.RouteTables) sb.Append("rtable ").Append(t).Append('\n');
        foreach (string h in host.HiddenRoutes) sb.Append("hide ").Append(h).Append('\n');
        foreach (var kv in host.Sysctls) sb.Append("sysctl ").Append(kv.Key).Append(' ').Append(kv.Value.Replace("\t", " ", StringComparison.Ordinal)).Append('\n');
        return sb.ToString();
    }

    public static VirtualHost ParseNetwork(string text)
    {
        var host = new VirtualHost();
        int lineNo = 0;
        foreach (string raw in text.Split('\n'))
        {
            lineNo++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            try
            {
                switch (f[0])
                {
                    case "clock":
                        host.Clock = double.Parse(f[1], CultureInfo.InvariantCulture);
                        break;
                    case "ifindex":
                        host.NextIfIndex = int.Parse(f[1], CultureInfo.InvariantCulture);
                        break;
                    case "link":
                        {
                            var l = new Link { Name = f[1] };
                            for (int i = 2; i + 1 < f.Length; i += 2)
                            {
                                switch (f[i])
                                {
                                    case "index": l.Index = int.Parse(f[i + 1], CultureInfo.InvariantCulture); break;
                                    case "type": l.Kind = f[i + 1]; break;
                                    case "state": l.Up = f[i + 1] == "up"; break;
                                    case "mac": l.Mac = f[i + 1]; break;
                                    case "mtu": l.Mtu = int.Parse(f[i + 1], CultureInfo.InvariantCulture); break;
                                    case "peer": l.Peer = f[i + 1]; break;
                                    case "qdisc": l.EverUp = f[i + 1] != "noop"; break;
                                    default: throw new FormatException($"unknown link attribute {f[i]}");
                                }
                            }
                            host.Links.Add(l);
                            break;
                        }
                    case "addr":
                        {
                            IpFamily fam = f[2] == "inet" ? IpFamily.V4 : IpFamily.V6;
                            string[] ap = f[3].Split('/');
                            if (!IpNet.TryParseStrict(ap[0], fam, out UInt128 a)) throw new FormatException($"bad address {f[3]}");
                            UInt128? brd = null;
                            bool tentative = false;
                            string? label = null;
                            bool nodad = false;
                            for (int i = 4; i < f.Length; i++)
                            {
                                if (f[i] == "tentative") tentative = true;
                                else if (f[i] == "nodad") nodad = true;
                                else if (f[i] == "label" && i + 1 < f.Length) label = f[++i];
                                else if (f[i] == "brd" && i + 1 < f.Length)
                                {
                                    brd = IpNet.TryParseStrict(f[++i], fam, out UInt128 b) ? b : throw new FormatException($"bad broadcast {f[i]}");
                                }
                                else throw new FormatException($"unknown address attribute {f[i]}");
                            }
                            host.Addresses.Add(new InterfaceAddress(f[1], fam, a, int.Parse(ap[1], CultureInfo.InvariantCulture)) { Broadcast = brd, Tentative = tentative, Label = label, NoDad = nodad });
                            break;
                        }
                    case "route":
                        host.Routes.Add(ParseRoute(f));
                        break;
                    case "hide":
                        host.HiddenRoutes.Add(string.Join(' ', f.Skip(1)));
                        break;
                    case "rtable":
                        host.RouteTables.Add(f[1]);
                        break;
                    case "sysctl":
                        host.Sysctls[f[1]] = string.Join('\t', f.Skip(2));
                        break;
                    default:
                        throw new FormatException($"unknown keyword {f[0]}");
                }
            }
            catch (Exception ex) when (ex is FormatException or IndexOutOfRangeException or OverflowException)
            {
                throw new InvalidDataException($"{NetworkFile}: line {lineNo}: {ex.Message}", ex);
            }
        }
        return host;
    }

    private static Route ParseRoute(string[] f)
    {
        IpFamily fam = f[1] == "inet" ? IpFamily.V4 : IpFamily.V6;
        UInt128 prefix = UInt128.Zero;
        int len = 0;
        if (f[2] != "default")
        {
            string[] p = f[2].Split('/');
            if (!IpNet.TryParseStrict(p[0], fam, out prefix)) throw new FormatException($"bad prefix {f[2]}");
            len = int.Parse(p[1], CultureInfo.InvariantCulture);
        }
        string? dev = null;
        UInt128? via = null, src = null;
        int metric = 0;
        string? proto = null, table = null;
        for (int i = 3; i + 1 < f.Length; i += 2)
        {
            switch (f[i])
            {
                case "via": via = IpNet.TryParseStrict(f[i + 1], fam, out UInt128 v) ? v : throw new FormatException($"bad gateway {f[i + 1]}"); break;
                case "dev": dev = f[i + 1]; break;
                case "src": src = IpNet.TryParseStrict(f[i + 1], fam, out UInt128 s) ? s : throw new FormatException($"bad source {f[i + 1]}"); break;
                case "metric": metric = int.Parse(f[i + 1], CultureInfo.InvariantCulture); break;
                case "proto": proto = f[i + 1]; break;
                case "table": table = f[i + 1]; break;
                default: throw new FormatException($"unknown route attribute {f[i]}");
            }
        }
        return new Route(fam, prefix, len, dev, via, src, metric) { Proto = proto, Table = table };
    }
}

/// <summary>The held host lock; disposing releases it.</summary>
public sealed class HostLock(FileStream stream) : IDisposable
{
    public void Dispose() => stream.Dispose();
}
