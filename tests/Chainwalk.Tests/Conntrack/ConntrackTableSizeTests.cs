using Chainwalk.Compat;
using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The conntrack hash's size: a small start, then the size nf_conntrack_buckets asks for taken at once (the kernel's
/// bucket array is allocated once, nf_ct_alloc_hashtable), doubling only past two thirds full; a changed bucket count
/// rehashes everything (nf_conntrack_hash_resize); a flush keeps the size. Lookups and the insertion-order listing
/// are the same whatever the size.
/// </summary>
public class ConntrackTableSizeTests
{
    /// <summary>Entry <paramref name="i"/>: a TCP connection from its own client port (and, with NAT, its own source binding).</summary>
    private static ConnEntry Entry(int i, bool srcNat = false)
    {
        var o = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0A010000u + (uint)(i >> 16), 0x0A020009u, (ushort)i, 80);
        o.TryInvert(out ConnTuple r);
        var ct = new ConnEntry(o, r) { Timeout = 100 };
        if (srcNat) ct.Status |= ConnStatus.SrcNatDone;
        return ct;
    }

    private static List<ConnEntry> Fill(ConntrackTable table, int n, bool srcNat = false)
    {
        var list = new List<ConnEntry>(n);
        for (int i = 0; i < n; i++)
        {
            ConnEntry ct = Entry(i, srcNat);
            table.TryInsert(ct, 0).ShouldBeTrue();
            list.Add(ct);
        }
        return list;
    }

    private static void AllFound(ConntrackTable table, List<ConnEntry> entries)
    {
        table.Count.ShouldBe(entries.Count);
        table.Entries.ShouldBe(entries);
        foreach (ConnEntry ct in entries)
        {
            table.TryFind(ct.Original, 0, 0, out ConnEntry a, out ConnDirection da).ShouldBeTrue();
            a.ShouldBeSameAs(ct);
            da.ShouldBe(ConnDirection.Original);
            table.TryFind(ct.Reply, 0, 0, out ConnEntry b, out ConnDirection db).ShouldBeTrue();
            b.ShouldBeSameAs(ct);
            db.ShouldBe(ConnDirection.Reply);
        }
    }

    // buckets, connections (two hash keys each), the slot array's length after them
    public static TheoryData<int, int, int> Sizes => new()
    {
        { 262144, 10, 64 },          // a few connections: the small start
        { 262144, 1000, 4096 },      // 2000 keys: still the small start (64 KiB of slots)
        { 262144, 1400, 262144 },    // 2800 keys: past it, the bucket count's size at once
        { 262144, 90000, 524288 },   // 180000 keys: more than two thirds of it (174762): one doubling (the kernel's chains would lengthen)
        { 16384, 3000, 16384 },
        { 1000, 3000, 16384 },       // 1024 buckets: below the small start, plain doubling (6000 keys)
        { 512, 10, 64 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void The_hash_takes_the_bucket_count_once_past_its_small_start(int buckets, int n, int expected)
    {
        var table = new ConntrackTable();
        table.UseBuckets(buckets);
        List<ConnEntry> entries = Fill(table, n);
        table.Capacity.ShouldBe(expected);
        AllFound(table, entries);
    }

    [Theory]
    [InlineData(262144, 100, 256)]
    [InlineData(262144, 3000, 262144)]
    [InlineData(2048, 3000, 8192)]
    public void The_by_source_index_takes_the_bucket_count_once_past_its_small_start(int buckets, int n, int expected)
    {
        var table = new ConntrackTable();
        table.UseBuckets(buckets);
        List<ConnEntry> entries = Fill(table, n, srcNat: true);
        table.SourceCapacity.ShouldBe(expected);
        foreach (ConnEntry ct in entries) table.BySource(ct.Original).ShouldBe(new[] { ct });
    }

    // the bucket count written, the slot array's length after (3000 connections = 6000 keys in a 262144-slot table)
    [Theory]
    [InlineData(65536, 65536)]
    [InlineData(8192, 16384)]     // 8192 slots cannot hold 6000 keys within two thirds: the next size that does
    [InlineData(1000, 16384)]
    [InlineData(262144, 262144)]  // unchanged: no rehash
    [InlineData(300000, 524288)]  // not a power of two: the next one
    public void A_changed_bucket_count_rehashes_every_entry_into_the_new_size(int buckets, int expected)
    {
        var table = new ConntrackTable();
        List<ConnEntry> entries = Fill(table, 3000);
        table.Capacity.ShouldBe(262144);
        string[] before = table.List(0).ToArray();
        table.UseBuckets(buckets);
        table.Capacity.ShouldBe(expected);
        AllFound(table, entries);
        table.List(0).ToArray().ShouldBe(before);
        // Still a working table: removals and insertions after the resize.
        table.Remove(entries[17]);
        entries.RemoveAt(17);
        ConnEntry more = Entry(70000);
        table.TryInsert(more, 0).ShouldBeTrue();
        entries.Add(more);
        AllFound(table, entries);
    }

    [Fact]
    public void A_small_table_only_notes_the_bucket_count()
    {
        var table = new ConntrackTable();
        List<ConnEntry> entries = Fill(table, 50);
        table.UseBuckets(1 << 20);
        table.Capacity.ShouldBe(256);
        AllFound(table, entries);
        entries.AddRange(Enumerable.Range(50, 2000).Select(i => Entry(i)));
        foreach (ConnEntry ct in entries.Skip(50)) table.TryInsert(ct, 0).ShouldBeTrue();
        table.Capacity.ShouldBe(1 << 20);
        AllFound(table, entries);
    }

    [Fact]
    public void A_flush_keeps_the_size_and_the_table_works_after_it()
    {
        var table = new ConntrackTable();
        List<ConnEntry> first = Fill(table, 3000, srcNat: true);
        int slots = table.Capacity, sources = table.SourceCapacity;
        table.Clear();
        table.Capacity.ShouldBe(slots);
        table.SourceCapacity.ShouldBe(sources);
        table.Count.ShouldBe(0);
        table.Entries.ShouldBeEmpty();
        table.TryFind(first[5].Original, 0, 0, out _, out _).ShouldBeFalse();
        table.BySource(first[5].Original).ShouldBeEmpty();
        first[5].Owner.ShouldBeNull();
        // The same connections again (new entries): found, listed in their new order.
        var again = new List<ConnEntry>();
        for (int i = 2999; i >= 0; i--)
        {
            ConnEntry ct = Entry(i, srcNat: true);
            table.TryInsert(ct, 0).ShouldBeTrue();
            again.Add(ct);
        }
        table.Capacity.ShouldBe(slots);
        AllFound(table, again);
    }

    /// <summary>
    /// `sysctl -w net.netfilter.nf_conntrack_buckets=N` (nf_conntrack_hash_sysctl → nf_conntrack_hash_resize): the hash is
    /// allocated rounded up to a page of bucket heads (512) and a read gives that size; 0 is refused (EINVAL); more than
    /// UINT_MAX / 8 heads, a negative value's bits included, cannot be allocated (ENOMEM). A refused write keeps the size.
    /// </summary>
    [Theory]
    [InlineData("1000", 0, "1024", "")]
    [InlineData("512", 0, "512", "")]
    [InlineData("513", 0, "1024", "")]
    [InlineData("1", 0, "512", "")]
    [InlineData("65536", 0, "65536", "")]
    [InlineData("536870400", 0, "536870400", "")]
    [InlineData("0", 1, "262144", "Invalid argument")]
    [InlineData("-0", 1, "262144", "Invalid argument")]
    [InlineData("536870401", 1, "262144", "Cannot allocate memory")]
    [InlineData("-1", 1, "262144", "Cannot allocate memory")]
    public void A_bucket_count_written_is_read_back_as_the_kernel_allocates_it(string written, int rc, string readBack, string error)
    {
        string dir = Directory.CreateTempSubdirectory("cw-ctb-").FullName;
        try
        {
            var store = new HostStore(dir);
            var output = new StringWriter();
            var errors = new StringWriter();
            var io = new ToolIo { In = TextReader.Null, Out = output, Err = errors };
            SysctlCompat.Run(["sysctl", "-w", "net.netfilter.nf_conntrack_buckets=" + written], store, io).ShouldBe(rc);
            if (rc == 0) output.ToString().ShouldBe($"net.netfilter.nf_conntrack_buckets = {written}\n");
            else errors.ToString().ShouldBe($"sysctl: setting key \"net.netfilter.nf_conntrack_buckets\": {error}\n");
            var read = new StringWriter();
            SysctlCompat.Run(["sysctl", "-n", "net.netfilter.nf_conntrack_buckets"], store, new ToolIo { In = TextReader.Null, Out = read, Err = read }).ShouldBe(0);
            read.ToString().ShouldBe(readBack + "\n");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
