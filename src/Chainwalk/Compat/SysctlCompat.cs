using Chainwalk.Host;

namespace Chainwalk.Compat;

/// <summary>
/// <c>sysctl [-w] [-n] [-q] [-a] KEY[=VALUE] …</c> for the net.* keys Chainwalk models (procps' sysctl
/// output: "key = value", -n values only, with chainwalk's --json one {"key","value"} object per line; unknown keys: "sysctl: cannot stat /proc/sys/…: No such file or directory").
/// </summary>
public static class SysctlCompat
{
    private const string Usage = """

Usage:
 sysctl [options] [variable[=value] ...]

Options:
  -a, --all            display all variables
  -e, --ignore         ignore unknown variables errors
  -n, --values         print only values of the given variable(s)
  -p, --load[=<file>]  read values from file
  -q, --quiet          do not echo variable set
  -w, --write          enable writing a value to variable

For more details see sysctl(8).
""";

    public static int Run(string[] argv, HostStore store, ToolIo io)
    {
        bool write = false, valuesOnly = false, quiet = false, all = false, ignore = false;
        var loads = new List<string>();
        var items = new List<string>();
        for (int i = 1; i < argv.Length; i++)
        {
            string a = argv[i];
            if (a.Length > 1 && a[0] == '-' && !a.StartsWith("--", StringComparison.Ordinal))
            {
                for (int j = 1; j < a.Length; j++)
                {
                    char c = a[j];
                    switch (c)
                    {
                        case 'w': write = true; break;
                        case 'n': valuesOnly = true; break;
                        case 'q': quiet = true; break;
                        case 'a': case 'A': case 'X': all = true; break;
                        case 'e': ignore = true; break;
                        case 'o': case 'x': break;
                        case 'p':
                        case 'f':
                            // -p takes an optional attached file name (-pFILE), else the next word if it is not an option.
                            if (j + 1 < a.Length) loads.Add(a[(j + 1)..]);
                            else if (i + 1 < argv.Length && !argv[i + 1].StartsWith('-')) loads.Add(argv[++i]);
                            else loads.Add("/etc/sysctl.conf");
                            j = a.Length;
                            break;
                        default:
                            io.Err.WriteLine($"sysctl: invalid option -- '{c}'");
                            io.Err.Write(Usage);
                            return 1;
                    }
                }
                continue;
            }
            switch (a)
            {
                case "--write": write = true; continue;
                case "--values": valuesOnly = true; continue;
                case "--quiet": quiet = true; continue;
                case "--all": all = true; continue;
                case "--ignore": ignore = true; continue;
                case "--load": loads.Add("/etc/sysctl.conf"); continue;
            }
            if (a.StartsWith("--load=", StringComparison.Ordinal))
            {
                loads.Add(a["--load=".Length..]);
                continue;
            }
            items.Add(a);
        }
        if (!all && loads.Count == 0 && items.Count == 0)
        {
            if (argv.Length > 1)
            {
                io.Err.WriteLine("sysctl: no variables specified");
                io.Err.WriteLine("Try `sysctl --help' for more information.");
            }
            else
            {
                io.Err.Write(Usage);
            }
            return 1;
        }

        using HostLock hostLock = store.Lock(waitSeconds: null);
        VirtualHost host = store.LoadNetwork();
        int rc = 0;
        bool changed = false;
        if (all)
        {
            foreach (var kv in host.Sysctls) Print(io, kv.Key, kv.Value.Replace(' ', '\t'), valuesOnly);
            return 0;
        }
        foreach (string file in loads)
        {
            // procps reads the whole file first (syntax errors come before any setting), then applies it.
            string[] lines;
            try
            {
                lines = File.ReadAllLines(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                io.Err.WriteLine($"sysctl: cannot open \"{file}\": No such file or directory");
                rc = 1;
                continue;
            }
            var settings = new List<string>();
            for (int n = 0; n < lines.Length; n++)
            {
                string t = lines[n].Trim();
                if (t.Length == 0 || t[0] is '#' or ';') continue;
                if (!t.Contains('=', StringComparison.Ordinal))
                {
                    io.Err.WriteLine($"sysctl: {file}({n + 1}): invalid syntax, continuing...");
                    continue;
                }
                settings.Add(t.TrimStart('-'));
            }
            foreach (string item in settings)
            {
                rc |= Set(host, item, valuesOnly, quiet, ignore, io, ref changed);
            }
        }
        foreach (string item in items)
        {
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            if (write || eq >= 0)
            {
                if (eq < 0)
                {
                    io.Err.WriteLine("sysctl: command line(0): invalid syntax, continuing...");
                    rc = 1;
                    continue;
                }
                rc |= Set(host, item, valuesOnly, quiet, ignore, io, ref changed);
                continue;
            }
            string key = Normalize(item);
            if (!host.Sysctls.TryGetValue(key, out string? current))
            {
                if (!ignore)
                {
                    io.Err.WriteLine($"sysctl: cannot stat /proc/sys/{key.Replace('.', '/')}: No such file or directory");
                    rc = 1;
                }
                continue;
            }
            Print(io, key, current.Replace(' ', '\t'), valuesOnly);
        }
        if (changed) store.SaveNetwork(host);
        return rc;
    }

    private static int Set(VirtualHost host, string item, bool valuesOnly, bool quiet, bool ignore, ToolIo io, ref bool changed)
    {
        int eq = item.IndexOf('=', StringComparison.Ordinal);
        string key = Normalize(item[..eq]);
        string value = item[(eq + 1)..].Trim();
        if (key.Length == 0)
        {
            io.Err.WriteLine("sysctl: Path is not under /proc/sys/: /proc/sys/");
            return 1;
        }
        if (!host.Sysctls.ContainsKey(key))
        {
            if (ignore) return 0;
            io.Err.WriteLine($"sysctl: cannot stat /proc/sys/{key.Replace('.', '/')}: No such file or directory");
            return 1;
        }
        if (!Valid(key, value))
        {
            io.Err.WriteLine($"sysctl: setting key \"{key}\": Invalid argument");
            return 1;
        }
        if (key == BucketsKey)
        {
            if (ConntrackBuckets(value) is not { } size)
            {
                io.Err.WriteLine(BucketsAsked(value) == 0
                    ? $"sysctl: setting key \"{key}\": Invalid argument"
                    : $"sysctl: setting key \"{key}\": Cannot allocate memory");
                return 1;
            }
            host.Sysctls[key] = size.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            host.Sysctls[key] = string.Join('\t', value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries));
        }
        Mirror(host, key, host.Sysctls[key]);
        changed = true;
        // procps echoes the value as it was written, not as the kernel reads it back.
        if (!quiet) Print(io, key, value, valuesOnly);
        return 0;
    }

    private static string Normalize(string key) => key.Trim().Replace('/', '.');

    private static void Print(ToolIo io, string key, string value, bool valuesOnly)
    {
        if (io.Json)
        {
            // {"key","value"} for every line sysctl prints (with -n too); value is the text as printed.
            using var json = new Chainwalk.Syntax.JsonLines(io.Out);
            System.Text.Json.Utf8JsonWriter w = json.Begin();
            w.WriteString("key", key);
            w.WriteString("value", value);
            json.End();
            return;
        }
        io.Out.WriteLine(valuesOnly ? value : $"{key} = {value}");
    }

    private const string BucketsKey = "net.netfilter.nf_conntrack_buckets";

    /// <summary>
    /// What a write of <paramref name="value"/> to nf_conntrack_buckets leaves in it, or null when the write fails
    /// (nf_conntrack_standalone.c, nf_conntrack_hash_sysctl → nf_conntrack_core.c, nf_conntrack_hash_resize): the integer
    /// lands in an unsigned int; 0 is refused (EINVAL); the new hash is allocated rounded up to a whole page of bucket
    /// heads (nf_ct_alloc_hashtable: 4096 / 8 = 512 on 64-bit) and more than UINT_MAX / 8 heads cannot be (ENOMEM); a read
    /// gives the size in use, so the rounded one. A failed write leaves the old size.
    /// </summary>
    internal static uint? ConntrackBuckets(string value)
    {
        uint asked = BucketsAsked(value);
        if (asked == 0) return null;
        ulong rounded = (asked + 511UL) / 512 * 512;
        return rounded > uint.MaxValue / 8 ? null : (uint)rounded;
    }

    /// <summary>The value as the kernel's unsigned int holds it (proc_dointvec writes the int's bits).</summary>
    private static uint BucketsAsked(string value) =>
        unchecked((uint)int.Parse(value.Trim(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture));

    private static bool Valid(string key, string value)
    {
        string[] p = value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (key == "net.ipv4.ip_local_port_range")
        {
            return p.Length == 2 && p.All(x => int.TryParse(x, out int v) && v is > 0 and < 65536);
        }
        // proc_dointvec: one integer, any sign.
        return p.Length == 1 && long.TryParse(p[0], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long n)
            && n is >= int.MinValue and <= int.MaxValue;
    }

    /// <summary>net.ipv4.ip_forward and conf.all.forwarding mirror each other, as in the kernel (devinet.c).</summary>
    private static void Mirror(VirtualHost host, string key, string value)
    {
        if (key == "net.ipv4.ip_forward" || key == "net.ipv4.conf.all.forwarding")
        {
            host.Sysctls["net.ipv4.ip_forward"] = value;
            foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith("net.ipv4.conf.", StringComparison.Ordinal) && k.EndsWith(".forwarding", StringComparison.Ordinal)).ToList())
            {
                host.Sysctls[k] = value;
            }
        }
        if (key == "net.ipv6.conf.all.forwarding")
        {
            foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith("net.ipv6.conf.", StringComparison.Ordinal) && k.EndsWith(".forwarding", StringComparison.Ordinal)).ToList())
            {
                host.Sysctls[k] = value;
            }
        }
    }
}
